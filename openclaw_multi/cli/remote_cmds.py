"""``openclaw remote set|show|clear``: the remote gateway a profile's commands talk to.

``set`` writes ``gateway.mode: "remote"`` and ``gateway.remote.{url, token|password,
tlsFingerprint}`` into the profile's config (atomically, mode 0600), so ``openclaw health``,
``gateway status`` and ``gateway call`` reach that gateway by default (client/target.py).
``gateway.remote.*`` is only what this profile's CLI *sends*: it never enables or satisfies
the profile's own gateway's auth. Secrets are never printed: ``show`` says where they are.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from pathlib import Path
from typing import Any

import click

from ..client.target import check_ws_url, read_secret_file, shown_url
from ..errors import ConfigError, UsageError
from ..profiles.config import load_config, load_raw_config, save_config_atomic
from ..profiles.paths import ProfilePaths, resolve_paths
from ..protocol.tls import format_fingerprint, normalize_fingerprint
from .context import CliContext, profile_options


@click.group("remote")
def remote() -> None:
    """Point this profile's commands at a remote gateway (or back at the local one)."""


def _paths(obj: CliContext) -> ProfilePaths:
    name, explicit = obj.profile()
    return resolve_paths(name, obj.env, explicit=explicit)


def _comments_note(path: Path) -> str | None:
    """A note when saving will drop the file's JSON5 comments (no round-trip writer)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError:
        return None
    try:
        json.loads(text)
    except ValueError:
        return f"note: {path} is rewritten as plain JSON; its comments are not kept"
    return None


def _save(path: Path, data: dict[str, Any]) -> None:
    note = _comments_note(path)
    try:
        save_config_atomic(path, data)
    except OSError as err:
        raise ConfigError(f"{path}: cannot write config: {err.strerror or err}") from None
    if note:
        click.echo(note)


def _gateway_section(data: dict[str, Any], path: Path) -> dict[str, Any]:
    section = data.setdefault("gateway", {})
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: gateway must be an object")
    return section


@remote.command("set")
@profile_options
@click.option("--url", required=True, metavar="WSS_URL", help="The remote gateway's URL.")
@click.option("--token", metavar="T", help="Its token (prefer --token-file: argv is visible).")
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Read its token from this file.",
)
@click.option(
    "--password-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Read its password from this file.",
)
@click.option(
    "--tls-fingerprint",
    metavar="SHA256",
    help="Pin its certificate (wss:// only): AA:BB:... or hex.",
)
@click.pass_obj
def remote_set(
    obj: CliContext,
    url: str,
    token: str | None,
    token_file: Path | None,
    password_file: Path | None,
    tls_fingerprint: str | None,
) -> None:
    """Make URL this profile's gateway for health, status and call."""
    given = [flag for flag, value in (("--token", token), ("--token-file", token_file),
             ("--password-file", password_file)) if value is not None]  # fmt: skip
    if len(given) != 1:
        raise UsageError("give exactly one of --token, --token-file, --password-file")
    problem = check_ws_url(url)
    if problem is not None:
        raise UsageError(f"invalid --url {shown_url(url)!r}: {problem}")
    pin = None
    if tls_fingerprint is not None:
        pin = normalize_fingerprint(tls_fingerprint)
        if pin is None:
            raise UsageError(
                "Invalid --tls-fingerprint: use the certificate's SHA-256, "
                "as AA:BB:... (32 pairs) or 64 hex digits"
            )
        if not url.lower().startswith("wss://"):
            raise UsageError("--tls-fingerprint needs a wss:// url")
    if token_file is not None:
        token = read_secret_file(token_file, "--token-file")
    password = read_secret_file(password_file) if password_file is not None else None
    if token is not None and not token.strip():
        raise UsageError("--token is empty")

    paths = _paths(obj)
    data = load_raw_config(paths.config_path)  # a config that does not parse stays as is
    section = _gateway_section(data, paths.config_path)
    remote_cfg = section.get("remote")
    if not isinstance(remote_cfg, dict):
        remote_cfg = {}
    remote_cfg["url"] = url
    remote_cfg.pop("token", None)
    remote_cfg.pop("password", None)
    remote_cfg.pop("tlsFingerprint", None)
    kind = "token" if token is not None else "password"
    remote_cfg[kind] = token if token is not None else password
    if pin is not None:
        remote_cfg["tlsFingerprint"] = format_fingerprint(pin)
    section["remote"] = remote_cfg
    section["mode"] = "remote"
    _save(paths.config_path, data)
    click.echo(f"remote gateway: {url}")
    click.echo(f"{kind}: set (stored in {paths.config_path}, 0600)")
    if pin is not None:
        click.echo(f"tls pin: {format_fingerprint(pin)}")
    elif url.lower().startswith("wss://"):
        click.echo("tls pin: none (the certificate must be trusted by this system's CAs)")
    click.echo(f"profile {paths.display_name}: health, gateway status and call now use it")


def describe_remote(paths: ProfilePaths) -> dict[str, Any]:
    """What ``remote show --json`` prints: never a secret, only whether one is set and where."""
    config = load_config(paths.config_path)
    section = config.gateway
    rem = section.remote
    kind = "token" if rem.token else "password" if rem.password else None
    mode = None
    with contextlib.suppress(OSError):
        mode = f"{stat.S_IMODE(os.stat(paths.config_path).st_mode):04o}"
    return {
        "profile": paths.display_name,
        "mode": section.mode,
        "url": rem.url,
        "auth": kind,
        "secretStoredIn": str(paths.config_path) if kind else None,
        "configFileMode": mode,
        "tlsFingerprint": (
            format_fingerprint(rem.tls_fingerprint)
            if rem.tls_fingerprint and normalize_fingerprint(rem.tls_fingerprint)
            else rem.tls_fingerprint
        ),
    }


@remote.command("show")
@profile_options
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_obj
def remote_show(obj: CliContext, as_json: bool) -> None:
    """Show the remote gateway this profile uses (secrets are never printed)."""
    info = describe_remote(_paths(obj))
    if as_json:
        click.echo(json.dumps(info))
        return
    unused = " (gateway.mode is local: the url is not used)" if info["url"] else ""
    click.echo(f"profile: {info['profile']}")
    click.echo(f"mode: {info['mode']}" + (unused if info["mode"] != "remote" else ""))
    click.echo(f"url: {info['url'] or '-'}")
    if info["auth"]:
        where = f"stored in {info['secretStoredIn']}, {info['configFileMode'] or '?'}"
        click.echo(f"{info['auth']}: set ({where})")
    else:
        click.echo("auth: none set")
    click.echo(f"tls pin: {info['tlsFingerprint'] or '-'}")


@remote.command("clear")
@profile_options
@click.pass_obj
def remote_clear(obj: CliContext) -> None:
    """Forget the remote gateway: commands talk to the profile's own gateway again."""
    paths = _paths(obj)
    data = load_raw_config(paths.config_path)
    section = data.get("gateway")
    if not isinstance(section, dict) or ("remote" not in section and "mode" not in section):
        click.echo(f"profile {paths.display_name}: no remote gateway set")
        return
    section.pop("remote", None)
    section["mode"] = "local"
    _save(paths.config_path, data)
    click.echo(f"profile {paths.display_name}: remote gateway cleared; commands use the local one")
