"""Port derivation, blocks, parsing and precedence (pure)."""

from __future__ import annotations

import pytest

from openclaw_multi.errors import ConfigError, UsageError
from openclaw_multi.profiles.ports import (
    PORT_BLOCK,
    blocks_overlap,
    derived_port,
    fnv1a_32,
    parse_port,
    resolve_port,
)

INVALID = "Invalid --port. Use a port number from 1 to 65535, for example 18789."


@pytest.mark.parametrize(
    ("name", "port"),
    [
        ("work", 41984),
        ("rescue", 23532),
        ("a", 22220),
        ("test", 53445),
        ("dev", 19001),
        (None, 18789),
    ],
)
def test_derived_port(name: str | None, port: int) -> None:
    assert derived_port(name) == port


def test_fnv1a_32_reference_vectors() -> None:
    # From the FNV reference test suite.
    assert fnv1a_32(b"") == 0x811C9DC5
    assert fnv1a_32(b"a") == 0xE40C292C
    assert fnv1a_32(b"foobar") == 0xBF9CF968


def test_derived_port_stays_in_range() -> None:
    for i in range(2000):
        assert 20000 <= derived_port(f"p{i}") < 60000


def test_blocks_overlap() -> None:
    assert PORT_BLOCK == 20
    assert blocks_overlap(20000, 20000)
    assert blocks_overlap(20000, 20019)
    assert blocks_overlap(20019, 20000)
    assert not blocks_overlap(20000, 20020)
    assert not blocks_overlap(20020, 20000)


@pytest.mark.parametrize(
    ("value", "port"), [(1, 1), (65535, 65535), ("18789", 18789), (" 8080\n", 8080)]
)
def test_parse_port_valid(value: object, port: int) -> None:
    assert parse_port(value) == port


@pytest.mark.parametrize(
    "value", [0, -1, 65536, "0", "65536", "", "abc", "12a", "-5", "1e3", 1.5, True, None, "١٢"]
)
def test_parse_port_invalid(value: object) -> None:
    with pytest.raises(UsageError) as err:
        parse_port(value)
    assert str(err.value) == INVALID


ENV = {"OPENCLAW_GATEWAY_PORT": "30001"}


@pytest.mark.parametrize(
    ("flag", "env", "config_port", "expected"),
    [
        ("30000", ENV, 30002, 30000),
        (None, ENV, 30002, 30001),
        (None, {}, 30002, 30002),
        (None, {"OPENCLAW_GATEWAY_PORT": ""}, 30002, 30002),  # empty means unset
        (None, {}, None, 41984),
    ],
)
def test_resolve_port_precedence(
    flag: str | None, env: dict[str, str], config_port: int | None, expected: int
) -> None:
    assert resolve_port("work", flag=flag, env=env, config_port=config_port) == expected


def test_resolve_port_defaults() -> None:
    assert resolve_port(None, flag=None, env={}, config_port=None) == 18789
    assert resolve_port("dev", flag=None, env={}, config_port=None) == 19001


def test_resolve_port_invalid_env_is_a_usage_error() -> None:
    with pytest.raises(UsageError) as err:
        resolve_port("work", flag=None, env={"OPENCLAW_GATEWAY_PORT": "99999"}, config_port=1)
    assert str(err.value) == INVALID


@pytest.mark.parametrize("config_port", [0, 70000, "abc", True])
def test_resolve_port_invalid_config_is_a_config_error(config_port: object) -> None:
    with pytest.raises(ConfigError) as err:
        resolve_port("work", flag=None, env={}, config_port=config_port)
    assert str(err.value) == INVALID


def test_resolve_port_invalid_flag_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        resolve_port("work", flag="0", env=ENV, config_port=1)
