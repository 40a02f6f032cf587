"""Our node host (``openclaw --profile P node run --url ...``) as a process a test started,
and waiting for it to connect to a gateway."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from conftest import wait_until
from wire import Wire

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


def node_entry(
    op: Wire, node: NodeProcess, *, approve: bool, timeout: float = 20.0
) -> dict[str, Any]:
    """Wait until the node host is connected; approve its surface with node.pair.approve if
    ``approve``, else return the entry as soon as it waits for approval."""

    def find() -> dict[str, Any] | None:
        assert node.proc.poll() is None, f"node host exited: {node.output()}"
        res = op.call("node.list")
        assert res["ok"] is True, res
        for entry in res["payload"]["nodes"]:
            if not entry["connected"] or entry["clientId"] != "node-host":
                continue
            if entry.get("pendingRequestId"):
                if not approve:
                    return entry  # type: ignore[no-any-return]
                done = op.call("node.pair.approve", {"requestId": entry["pendingRequestId"]})
                assert done["ok"] is True, done
                continue
            if entry["approvalState"] == "approved":
                return entry  # type: ignore[no-any-return]
        return None

    found: dict[str, Any] = wait_until(find, timeout, "the node host to connect")
    return found
