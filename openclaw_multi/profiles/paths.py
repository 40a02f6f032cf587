"""Where a profile lives: home, state dir, config file, and every artefact under them.

Pure: the environment comes in as a mapping (never read from ``os.environ`` here), so the
rules are tested with plain dicts and a caller can resolve paths for a child's environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from openclaw_multi.errors import UsageError

from .names import display_name, parse_profile_name

__all__ = [
    "CONFIG_FILE_NAME",
    "ProfilePaths",
    "env_applies_to_profile",
    "env_for_profile",
    "resolve_paths",
    "select_profile",
    "state_dir_name",
]

CONFIG_FILE_NAME = "openclaw.json"
ENV_PREFIX = "OPENCLAW_"
HOME_ENV = "OPENCLAW_HOME"
PROFILE_ENV = "OPENCLAW_PROFILE"
STATE_DIR_ENV = "OPENCLAW_STATE_DIR"
CONFIG_PATH_ENV = "OPENCLAW_CONFIG_PATH"

_INVALID_ENV_PROFILE = 'Invalid OPENCLAW_PROFILE (use letters, numbers, "_", "-" only)'


@dataclass(frozen=True)
class ProfilePaths:
    """The files of one profile. Every artefact lives under ``state_dir``.

    Attributes:
        name: Canonical profile name; None is the default profile.
        home: The home the state dir was derived from.
        state_dir: The profile's state directory (not resolved through symlinks).
        config_path: The profile's JSON5 config file.
    """

    name: str | None
    home: Path
    state_dir: Path
    config_path: Path

    @property
    def lock_path(self) -> Path:
        """The file the gateway holds a kernel lock on (its content means nothing)."""
        return self.state_dir / "gateway.lock"

    @property
    def identity_path(self) -> Path:
        """The file naming the gateway that holds the lock (pid, start time, port...)."""
        return self.state_dir / "gateway.identity.json"

    @property
    def log_dir(self) -> Path:
        """The directory for the profile's logs."""
        return self.state_dir / "logs"

    @property
    def log_path(self) -> Path:
        """The gateway's log file."""
        return self.log_dir / "gateway.log"

    @property
    def gateway_key_path(self) -> Path:
        """The gateway's own Ed25519 key pair (``gateway.identity.get``), 0600.

        Not ``identity/device.json``: the reference OpenClaw CLI and node host refuse to run
        while that legacy name exists in a state dir they share with us.
        """
        return self.state_dir / "identity" / "gateway-device.json"

    @property
    def display_name(self) -> str:
        """The profile's name for people (``default`` for the unnamed one)."""
        return display_name(self.name)


def _get(env: Mapping[str, str], key: str) -> str | None:
    # ``VAR= cmd`` in a shell means "not set" to the person typing it.
    value = env.get(key, "")
    return value if value else None


def _home(env: Mapping[str, str]) -> Path:
    home = _get(env, "HOME")
    raw = _get(env, HOME_ENV) or home
    if raw is None:
        raise UsageError("Cannot find the home directory: set HOME or OPENCLAW_HOME")
    # OPENCLAW_HOME=~/x from a config file or systemd unit is not expanded by a shell.
    if home is not None and (raw == "~" or raw.startswith("~/")):
        raw = home + raw[1:]
    return Path(raw)


def state_dir_name(name: str | None) -> str:
    """The state directory's name under home.

    Args:
        name: Canonical profile name; None is the default profile.

    Returns:
        ``.openclaw`` for the default profile, else ``.openclaw-<name>``.
    """
    return ".openclaw" if name is None else f".openclaw-{name}"


def _env_profile(env: Mapping[str, str]) -> str | None:
    raw = _get(env, PROFILE_ENV)
    try:
        return parse_profile_name(raw)
    except UsageError:
        raise UsageError(_INVALID_ENV_PROFILE) from None


def select_profile(flag: str | None, dev: bool, env: Mapping[str, str]) -> tuple[str | None, bool]:
    """Choose the profile: ``--profile``/``--dev`` beat ``OPENCLAW_PROFILE``.

    Args:
        flag: The ``--profile`` value, or None.
        dev: True if ``--dev`` was given.
        env: The environment (``OPENCLAW_PROFILE`` is read from it; empty means unset).

    Returns:
        ``(name, explicit)``: the canonical name (None for default) and whether it came
        from a flag, which :func:`resolve_paths` needs.

    Raises:
        UsageError: An invalid name, or ``--dev`` with ``--profile``.
    """
    if flag is not None or dev:
        return parse_profile_name(flag, dev=dev), True
    return _env_profile(env), False


def env_applies_to_profile(name: str | None, env: Mapping[str, str], *, explicit: bool) -> bool:
    """Tell whether the environment's per-profile overrides belong to profile ``name``.

    ``OPENCLAW_STATE_DIR``, ``OPENCLAW_CONFIG_PATH``, ``OPENCLAW_GATEWAY_PORT`` and the
    gateway secrets in the environment belong to whichever profile that environment
    selected. They apply when the profile was not chosen explicitly (it came from that same
    environment), or when ``OPENCLAW_PROFILE`` names the same profile as ``name`` (both
    unset/``default`` counts as the same). An explicit ``--profile other`` must not inherit
    them: that is how a gateway's environment leaks into a child running another profile.

    Args:
        name: Canonical profile name; None is the default profile.
        env: The environment (empty values count as unset).
        explicit: True if the name came from ``--profile``/``--dev``.

    Returns:
        True if the overrides in ``env`` apply to ``name``.
    """
    if not explicit:
        return True
    try:
        return _env_profile(env) == name
    except UsageError:
        # The flag decides the profile; a junk OPENCLAW_PROFILE cannot own its paths.
        return False


def resolve_paths(name: str | None, env: Mapping[str, str], *, explicit: bool) -> ProfilePaths:
    """Resolve a profile's paths from the environment.

    Home is ``OPENCLAW_HOME``, else ``HOME``. The state dir is ``<home>/.openclaw``
    (default profile) or ``<home>/.openclaw-<name>``; the config is
    ``<state>/openclaw.json``.

    ``OPENCLAW_STATE_DIR`` and ``OPENCLAW_CONFIG_PATH`` override those, with one rule: an
    explicit ``--profile``/``--dev`` must not inherit another profile's paths (a gateway's
    environment leaking into a child that runs another profile). So the overrides apply
    when ``explicit`` is False, or when ``OPENCLAW_PROFILE`` in ``env`` names the same
    profile as ``name`` (both unset/``default`` counts as the same). ``OPENCLAW_HOME`` is
    not a profile's path and always applies.

    Args:
        name: Canonical profile name; None is the default profile.
        env: The environment to read (empty values count as unset).
        explicit: True if the name came from ``--profile``/``--dev``.

    Returns:
        The profile's paths (not resolved through symlinks; nothing is touched on disk).

    Raises:
        UsageError: Neither ``HOME`` nor ``OPENCLAW_HOME`` is set.
    """
    home = _home(env)
    state_dir = home / state_dir_name(name)
    config_path: Path | None = None
    if env_applies_to_profile(name, env, explicit=explicit):
        state_override = _get(env, STATE_DIR_ENV)
        if state_override is not None:
            state_dir = Path(state_override)
        config_override = _get(env, CONFIG_PATH_ENV)
        if config_override is not None:
            config_path = Path(config_override)
    return ProfilePaths(
        name=name,
        home=home,
        state_dir=state_dir,
        config_path=config_path or state_dir / CONFIG_FILE_NAME,
    )


def env_for_profile(name: str | None, base_env: Mapping[str, str]) -> dict[str, str]:
    """Build the environment for a child process that runs profile ``name``.

    Every ``OPENCLAW_*`` variable (port, state dir, config path, token, ...) belongs to
    whichever profile the parent runs, so all are dropped except ``OPENCLAW_HOME``; then
    ``OPENCLAW_PROFILE`` names the child's profile (unset for the default profile).

    Args:
        name: Canonical profile name; None is the default profile.
        base_env: The environment to start from (not modified).

    Returns:
        A new dict.
    """
    env = {k: v for k, v in base_env.items() if not k.startswith(ENV_PREFIX) or k == HOME_ENV}
    if name is not None:
        env[PROFILE_ENV] = name
    return env
