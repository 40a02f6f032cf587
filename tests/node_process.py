"""Our node host (``openclaw --profile P node run --url ...``) as a process a test started."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

CLI = [sys.executable, "-m", "openclaw_multi.cli.main"]


@dataclass
class NodeProcess:
    """A node host process we started."""

    proc: subprocess.Popen[bytes]
    output_path: Path
    state_dir: Path

    def output(self) -> str:
        """What it printed to stdout/stderr so far."""
        return self.output_path.read_text(errors="replace")

    def log(self) -> str:
        """Its ``logs/node.log`` ("" before it wrote one)."""
        path = self.state_dir / "logs" / "node.log"
        return path.read_text(errors="replace") if path.exists() else ""


N = TypeVar("N", bound=NodeProcess)


def start_node_host(
    kind: type[N],
    home: Path,
    profile: str,
    section: dict[str, Any],
    url: str,
    *flags: str,
    out: Path,
    env: dict[str, str],
) -> N:
    """Write ``section`` as profile ``profile``'s ``nodeHost`` config, then start
    ``openclaw --profile PROFILE node run --url URL FLAGS...`` with its output in ``out``."""
    state = home / f".openclaw-{profile}"
    state.mkdir(exist_ok=True)
    (state / "openclaw.json").write_text(json.dumps({"nodeHost": section}))
    cmd = [*CLI, "--profile", profile, "node", "run", "--url", url, *flags]
    with out.open("ab") as sink:
        proc = subprocess.Popen(cmd, env=env, stdout=sink, stderr=subprocess.STDOUT)
    return kind(proc, out, state)
