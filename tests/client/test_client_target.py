"""Which gateway a client command reaches, and with which credentials (client/target.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from openclaw_multi.client.target import (
    CREDENTIALS_REQUIRED,
    check_ws_url,
    resolve_target,
    shown_url,
)
from openclaw_multi.errors import ConfigError, CredentialsRequired, GatewayError, UsageError
from openclaw_multi.profiles.ports import derived_port


def write_config(home: Path, profile: str, text: str) -> Path:
    state = home / f".openclaw-{profile}"
    state.mkdir(parents=True, exist_ok=True)
    path = state / "openclaw.json"
    path.write_text(text)
    return path


def env_for(home: Path, **extra: str) -> dict[str, str]:
    return {"HOME": str(home), **extra}


def test_url_without_credentials_is_refused(home: Path) -> None:
    env = env_for(home, OPENCLAW_GATEWAY_TOKEN="env-secret")
    write_config(home, "work", '{gateway: {auth: {token: "cfg-secret"}}}')
    with pytest.raises(CredentialsRequired) as info:
        resolve_target(("work", True), env, url="ws://127.0.0.1:9/")
    assert str(info.value) == CREDENTIALS_REQUIRED
    assert isinstance(info.value, GatewayError)


def test_url_with_token_ignores_config_and_env(home: Path) -> None:
    write_config(home, "work", "{ broken")  # never read with --url
    env = env_for(home, OPENCLAW_GATEWAY_PASSWORD="env-pass")
    target = resolve_target(("work", True), env, url="ws://10.0.0.1:1234/", token="flag")
    assert (target.url, target.token, target.password) == ("ws://10.0.0.1:1234/", "flag", None)
    assert target.source == "--url" and target.profile_display == "work"
    assert "flag" not in repr(target)


def test_url_with_password_file(home: Path, tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("  pass-from-file\n")
    target = resolve_target((None, False), env_for(home), url="wss://h/", password_file=secret)
    assert target.password == "pass-from-file" and target.token is None


def test_bad_url_and_conflicting_password_flags(home: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="invalid --url"):
        resolve_target((None, False), env_for(home), url="http://h/", token="t")
    with pytest.raises(UsageError, match="not both"):
        resolve_target((None, False), env_for(home), password="p", password_file=tmp_path / "pw")
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(UsageError, match="is empty"):
        resolve_target((None, False), env_for(home), url="ws://h/", password_file=empty)


def test_check_ws_url() -> None:
    assert check_ws_url("ws://127.0.0.1:41984/") is None
    assert check_ws_url("wss://gw.example/") is None
    assert check_ws_url("ws://[::1]:5/") is None
    assert check_ws_url("http://x/") is not None
    assert check_ws_url("ws://:5/") is not None
    assert check_ws_url("ws://h:99999/") is not None


def test_a_url_with_credentials_is_refused_without_echoing_them(home: Path) -> None:
    for url in ("ws://user:s3cret@gw:1/", "wss://s3cret@gw/", "ws://@gw/"):
        problem = check_ws_url(url)
        assert problem is not None and "--token" in problem, url
        with pytest.raises(UsageError, match="credentials") as caught:
            resolve_target((None, False), env_for(home), url=url, token="t")
        assert "s3cret" not in str(caught.value)
    assert shown_url("ws://user:s3cret@gw:1/x") == "ws://***@gw:1/x"
    assert shown_url("ws://gw:1/a@b") == "ws://gw:1/a@b"  # "@" in the path is no userinfo
    assert check_ws_url("ws://gw:1/a@b") is None


def test_local_port_precedence(home: Path) -> None:
    assert resolve_target(("work", True), env_for(home)).url == "ws://127.0.0.1:41984/"
    assert resolve_target((None, False), env_for(home)).port == 18789
    write_config(home, "work", "{gateway: {port: 30000}}")
    assert resolve_target(("work", True), env_for(home)).port == 30000
    # The env port belongs to the profile the environment selected...
    env = env_for(home, OPENCLAW_GATEWAY_PORT="31000")
    assert resolve_target(("work", False), env).port == 31000
    assert resolve_target(("work", True), {**env, "OPENCLAW_PROFILE": "work"}).port == 31000
    # ...not to another profile picked with --profile.
    assert resolve_target(("work", True), env).port == 30000
    assert resolve_target(("rescue", True), env).port == derived_port("rescue")


def test_local_credentials_precedence(home: Path) -> None:
    write_config(home, "work", '{gateway: {auth: {token: "cfg-token", password: "cfg-pass"}}}')
    env = env_for(home, OPENCLAW_PROFILE="work", OPENCLAW_GATEWAY_TOKEN="env-token")
    target = resolve_target(("work", True), env)
    assert (target.token, target.password) == ("env-token", "cfg-pass")
    target = resolve_target(("work", True), env, token="flag-token")
    assert (target.token, target.password) == ("flag-token", None)
    # Env secrets of another profile's environment are not sent.
    target = resolve_target(("work", True), {**env, "OPENCLAW_PROFILE": "other"})
    assert target.token == "cfg-token"


def test_local_credentials_follow_the_auth_mode(home: Path) -> None:
    write_config(home, "work", '{gateway: {auth: {mode: "password", token: "t", password: "p"}}}')
    target = resolve_target(("work", True), env_for(home))
    assert (target.token, target.password) == (None, "p")


def test_remote_mode(home: Path) -> None:
    write_config(
        home,
        "work",
        json.dumps(
            {
                "gateway": {
                    "mode": "remote",
                    "remote": {"url": "wss://gw.example:443/", "token": "remote-token"},
                    "auth": {"token": "local-token"},
                }
            }
        ),
    )
    env = env_for(home, OPENCLAW_GATEWAY_TOKEN="env-token")
    target = resolve_target(("work", False), env)
    assert (target.url, target.token, target.source) == (
        "wss://gw.example:443/",
        "remote-token",
        "gateway.remote.url",
    )
    assert resolve_target(("work", False), env, token="flag").token == "flag"


def test_bad_remote_url_and_broken_config(home: Path) -> None:
    write_config(home, "work", '{gateway: {mode: "remote", remote: {url: "http://x/"}}}')
    with pytest.raises(ConfigError, match=r"gateway\.remote\.url"):
        resolve_target(("work", True), env_for(home))
    path = write_config(home, "work", "{gateway: {port: }}")
    with pytest.raises(ConfigError, match=f"^{re.escape(str(path))}:1:"):
        resolve_target(("work", True), env_for(home))
