"""Loading and saving a profile's JSON5 config."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from openclaw_multi.errors import ConfigError
from openclaw_multi.profiles.config import (
    GatewayAuth,
    GatewaySection,
    ProfileConfig,
    load_config,
    load_raw_config,
    save_config_atomic,
)

JSON5_TEXT = """\
// OpenClaw config with sections we do not read
{
  agents: { defaults: { model: "x" } },  // unknown: ignored
  gateway: {
    port: 30100,
    bind: 'lan',
    customBindHost: "10.0.0.5",
    auth: { mode: "token", token: "t0k", allowTailscale: true, futureKey: 1, },
    mode: "remote",
    remote: { url: "wss://gw.example:443", tlsFingerprint: "ab:cd", },
    tls: { enabled: true, certPath: "/c.pem", keyPath: "/k.pem", autoGenerate: false },
    trustedProxies: ["10.0.0.1",],
    somethingNew: { a: [1, 2, 3] },
  },
  channels: { telegram: { botToken: "123:abc", dmPolicy: "pairing", allowFrom: [42, "7"] } },
  plugins: [],
}
"""


def test_json5_with_comments_and_trailing_commas(tmp_path: Path) -> None:
    path = tmp_path / "openclaw.json"
    path.write_text(JSON5_TEXT)
    config = load_config(path)
    telegram = config.channels.telegram  # OpenClaw's keys we do not read are ignored too
    assert (telegram.bot_token, telegram.allow_from, telegram.enabled) == (
        "123:abc",
        [42, "7"],
        False,
    )
    gw = config.gateway
    assert gw.port == 30100
    assert gw.bind == "lan"
    assert gw.custom_bind_host == "10.0.0.5"
    assert gw.auth == GatewayAuth(mode="token", token="t0k", allow_tailscale=True)
    assert gw.mode == "remote"
    assert gw.remote.url == "wss://gw.example:443"
    assert gw.remote.tls_fingerprint == "ab:cd"
    assert gw.tls.enabled and gw.tls.cert_path == "/c.pem" and gw.tls.key_path == "/k.pem"
    assert gw.tls.auto_generate is False
    assert gw.trusted_proxies == ["10.0.0.1"]


def test_missing_file_gives_defaults(tmp_path: Path) -> None:
    cfg = load_config(tmp_path / "nope.json")
    assert cfg == ProfileConfig()
    gw = cfg.gateway
    assert gw == GatewaySection()
    assert gw.port is None and gw.bind == "loopback" and gw.mode == "local"
    assert gw.auth.mode is None and gw.auth.allow_tailscale is False
    assert gw.tls.enabled is False and gw.tls.auto_generate is True
    assert gw.trusted_proxies == []
    assert not (tmp_path / "nope.json").exists()  # loading never creates it


def test_empty_object_gives_defaults(tmp_path: Path) -> None:
    path = tmp_path / "openclaw.json"
    path.write_text("{}")
    assert load_config(path) == ProfileConfig()


@pytest.mark.parametrize(
    ("text", "where"),
    [
        # Columns are json5's (its parser reports the furthest point it reached).
        ("{\n  gateway: {\n    port: 1,,\n  }\n}\n", ":3:14: "),
        ('{\n  gateway: { bind: "lan"\n', ":3:1: "),
        ("", ":1:1: "),
        ("{\n\n  a: 1 b: 2}", ":3:8: "),
    ],
)
def test_parse_error_names_file_line_col_and_leaves_file_alone(
    tmp_path: Path, text: str, where: str
) -> None:
    path = tmp_path / "openclaw.json"
    path.write_text(text)
    before = path.read_bytes(), path.stat().st_mtime_ns, stat.S_IMODE(path.stat().st_mode)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert message.startswith(f"{path}{where}"), message
    assert "\n" not in message
    after = path.read_bytes(), path.stat().st_mtime_ns, stat.S_IMODE(path.stat().st_mode)
    assert after == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["openclaw.json"]


def test_raw_newline_in_string_still_gives_one_line(tmp_path: Path) -> None:
    path = tmp_path / "openclaw.json"
    path.write_text('{\n  a: "x\n"}')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value).startswith(f"{path}:2:")
    assert "\n" not in str(err.value)


def test_invalid_utf8_is_located(tmp_path: Path) -> None:
    path = tmp_path / "openclaw.json"
    path.write_bytes(b'{\n  a: "\xff"}')
    with pytest.raises(ConfigError, match=r":2:7: invalid UTF-8"):
        load_config(path)


@pytest.mark.parametrize(
    ("text", "key_path"),
    [
        ('{gateway: {port: "x"}}', "$.gateway.port"),
        ("{gateway: {port: true}}", "$.gateway.port"),
        ('{gateway: {bind: "everywhere"}}', "$.gateway.bind"),
        ("{gateway: {auth: {allowTailscale: 1}}}", "$.gateway.auth.allowTailscale"),
        ("{gateway: {tls: {enabled: 'yes'}}}", "$.gateway.tls.enabled"),
        ("{gateway: {trustedProxies: [1]}}", "$.gateway.trustedProxies[0]"),
        ("{gateway: []}", "$.gateway"),
    ],
)
def test_wrong_type_names_file_and_key_path(tmp_path: Path, text: str, key_path: str) -> None:
    path = tmp_path / "openclaw.json"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value).startswith(f"{path}: ")
    assert f"`{key_path}`" in str(err.value)


def test_top_level_must_be_an_object(tmp_path: Path) -> None:
    path = tmp_path / "openclaw.json"
    path.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="must be an object"):
        load_config(path)


def test_unreadable_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path)  # a directory


def test_save_then_load_raw_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "new-state" / "openclaw.json"
    data = {"gateway": {"port": 30200, "auth": {"token": "é"}}, "agents": {}}
    save_config_atomic(path, data)
    assert load_raw_config(path) == data
    assert path.read_text(encoding="utf-8").startswith('{\n  "gateway": {\n    "port": 30200')
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert os.listdir(path.parent) == ["openclaw.json"]
    assert load_config(path).gateway.port == 30200


def test_save_keeps_a_symlinked_config_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "openclaw.json"
    real.parent.mkdir()
    real.write_text("{}")
    link = tmp_path / "openclaw.json"
    link.symlink_to(real)
    save_config_atomic(link, {"gateway": {"port": 30300}})
    assert link.is_symlink()
    assert load_raw_config(real) == {"gateway": {"port": 30300}}


def test_load_raw_config_missing_is_empty(tmp_path: Path) -> None:
    assert load_raw_config(tmp_path / "none.json") == {}
