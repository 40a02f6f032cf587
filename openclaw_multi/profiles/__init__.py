"""Profiles: names, paths, config, port rules, and the one-gateway-per-profile lock.

``names``, ``paths`` and ``ports`` are pure (tested with plain values); ``config`` reads
files; ``lock`` deals with processes, the kernel lock and listening sockets.
"""

from .atomic import write_file_atomic
from .config import (
    GatewayAuth,
    GatewayRemote,
    GatewaySection,
    GatewayTls,
    ProfileConfig,
    load_config,
    load_raw_config,
    save_config_atomic,
)
from .discovery import list_profiles
from .lock import (
    Identity,
    ProfileLock,
    find_port_holder,
    identity_is_live,
    identity_matches_process,
    port_in_use_message,
    process_start_time,
    read_identity,
    write_identity,
)
from .names import display_name, parse_profile_name
from .paths import ProfilePaths, env_for_profile, resolve_paths, select_profile
from .ports import (
    PORT_BLOCK,
    blocks_overlap,
    derived_port,
    fnv1a_32,
    parse_port,
    resolve_port,
)

__all__ = [
    "PORT_BLOCK",
    "GatewayAuth",
    "GatewayRemote",
    "GatewaySection",
    "GatewayTls",
    "Identity",
    "ProfileConfig",
    "ProfileLock",
    "ProfilePaths",
    "blocks_overlap",
    "derived_port",
    "display_name",
    "env_for_profile",
    "find_port_holder",
    "fnv1a_32",
    "identity_is_live",
    "identity_matches_process",
    "list_profiles",
    "load_config",
    "load_raw_config",
    "parse_port",
    "parse_profile_name",
    "port_in_use_message",
    "process_start_time",
    "read_identity",
    "resolve_paths",
    "resolve_port",
    "save_config_atomic",
    "select_profile",
    "write_file_atomic",
    "write_identity",
]
