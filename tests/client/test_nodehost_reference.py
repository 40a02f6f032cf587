"""The real OpenClaw CLI (2026.9.6) as the operator of our node host, through our gateway.

``openclaw-ref nodes invoke|notify --url ... --token ...`` resolve our node by its display
name and drive ``node.invoke``: what comes back is our node host's answer in the shapes the
reference expects (``system.which``, ``system.notify``, a refusal).

Skipped without the reference client (``./scripts/setup-reference-client``); failed in CI.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import GatewayProcess, wait_until
from reference import Result, client_env, run
from test_nodehost_live import (  # noqa: F401 (files, gw, node_factory: fixtures)
    TOKEN,
    Node,
    connected_node,
    files,
    gw,
    node_factory,
    operator,
)

pytestmark = pytest.mark.e2e


def run_ref(home: Path, *args: str) -> Result:
    return run(client_env(home / "ref-home"), *args, timeout=120)


def test_reference_cli_invokes_our_node_host(
    gw: GatewayProcess,  # noqa: F811 (the fixture imported above)
    node_factory: Callable[..., Node],  # noqa: F811
    reference_cli: Path,
    home: Path,
) -> None:
    node = node_factory(gw.url)
    op = operator(gw.port)
    connected_node(op, node)
    op.close()
    flags = ["--url", gw.url, "--token", TOKEN]

    which = run_ref(
        home,
        "nodes", "invoke", "--node", "Test laptop", "--command", "system.which",
        "--params", json.dumps({"bins": ["sleep"]}), *flags,
    )  # fmt: skip
    assert which.returncode == 0, which.stderr
    result = json.loads(which.stdout)
    assert result["ok"] is True and result["command"] == "system.which"
    assert result["payload"]["bins"]["sleep"].endswith("/sleep")

    notified = run_ref(
        home,
        "nodes", "notify", "--node", "Test laptop", "--title", "From the reference",
        "--body", "hello", "--json", *flags,
    )  # fmt: skip
    assert notified.returncode == 0, notified.stderr
    assert json.loads(notified.stdout)["payload"] == {"ok": True}
    wait_until(
        lambda: "notification (active): From the reference - hello" in node.log(), 10, "the log"
    )

    refused = run_ref(
        home,
        "nodes", "invoke", "--node", "Test laptop", "--command", "fs.read",
        "--params", json.dumps({"path": "/etc/passwd"}), *flags,
    )  # fmt: skip
    assert refused.returncode != 0
    assert "PATH_POLICY_DENIED" in refused.stderr + refused.stdout
