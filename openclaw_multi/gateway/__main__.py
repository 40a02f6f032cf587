"""``python -m openclaw_multi.gateway``: the gateway as a program (how the supervisor runs it).

Same options and exit codes as ``openclaw gateway run``: 0 after a graceful stop, 2 for bad
usage, 78 when the gateway must not be restarted (bad config, profile locked, port taken).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..errors import OpenClawError
from ..profiles.paths import select_profile
from .binding import BIND_MODES
from .server import exit_status, run_gateway
from .settings import AUTH_MODES, GatewayOptions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m openclaw_multi.gateway")
    parser.add_argument("--profile")
    parser.add_argument("--dev", action="store_true")
    parser.add_argument("--port")
    parser.add_argument("--bind", choices=BIND_MODES)
    parser.add_argument("--auth", choices=AUTH_MODES[:3])
    parser.add_argument("--password-file", type=Path)
    parser.add_argument("--quiet", action="store_true", help="log to the log file only")
    args = parser.parse_args(argv)
    try:
        name, explicit = select_profile(args.profile, args.dev, os.environ)
        options = GatewayOptions(
            profile=name,
            explicit=explicit,
            port=args.port,
            bind=args.bind,
            auth=args.auth,
            password_file=args.password_file,
            foreground=not args.quiet,
        )
        return run_gateway(options, os.environ)
    except OpenClawError as err:
        print(f"error: {err}", file=sys.stderr)
        return exit_status(err)


if __name__ == "__main__":
    sys.exit(main())
