"""Our ``openclaw`` CLI as a child process of a test, in a home of its own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import clean_env

# The venv's console script when installed, else the module (the same code either way).
_SCRIPT = Path(sys.executable).with_name("openclaw")
OPENCLAW = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "openclaw_multi.cli.main"]


def openclaw(
    home: Path, *args: str, timeout: float = 30, **env: str
) -> subprocess.CompletedProcess[str]:
    """``openclaw ARGS`` with HOME ``home``, no OPENCLAW_* of ours, ``env`` added."""
    return subprocess.run(
        [*OPENCLAW, *args],
        env=clean_env(home, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
