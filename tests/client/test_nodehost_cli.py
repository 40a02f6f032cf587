"""``openclaw node run`` as a process: option errors, exit codes, one host per profile."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from pathlib import Path

import pytest
from conftest import clean_env, free_port, wait_until
from test_nodehost_live import CLI

pytestmark = pytest.mark.e2e


def run_cli(home: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "--profile", "laptop", "node", "run", *args],
        env=clean_env(home),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def node_start(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "node", "start", "laptop", *args],
        env=clean_env(home),
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ["--url", "ws://127.0.0.1:9/", "--token", "a", "--token-file", "f"],
            2,
            "error: use either --token or --token-file, not both",
        ),
        (["--url", "http://127.0.0.1:9/", "--token", "a"], 2, "error: invalid --url"),
        (
            ["--url", "ws://me:s3cret@127.0.0.1:9/", "--token", "a"],
            2,
            "error: invalid --url 'ws://***@127.0.0.1:9/': credentials in the URL",
        ),
        (
            ["--url", "ws://127.0.0.1:9/", "--token", "a", "--tls-fingerprint", "zz"],
            2,
            "error: invalid --tls-fingerprint",
        ),
        (["--url", "ws://127.0.0.1:9/"], 1, "error: no credentials for ws://127.0.0.1:9/"),
        (
            ["--url", "ws://127.0.0.1:9/", "--token-file", "/nonexistent/t"],
            2,
            "error: cannot read --token-file /nonexistent/t",
        ),
    ],
)
def test_option_errors(home: Path, args: list[str], code: int, message: str) -> None:
    done = run_cli(home, *args)
    assert done.returncode == code, done
    assert done.stderr.startswith(message), done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_bad_config_exits_78(home: Path) -> None:
    state = home / ".openclaw-laptop"
    state.mkdir()
    (state / "openclaw.json").write_text(json.dumps({"nodeHost": {"runTimeoutMs": -5}}))
    done = run_cli(home, "--url", "ws://127.0.0.1:9/", "--token", "x")
    assert done.returncode == 78, done
    assert done.stderr.startswith("error: ") and "runTimeoutMs" in done.stderr


def test_one_host_per_profile_and_clean_stop_while_retrying(home: Path) -> None:
    url = f"ws://127.0.0.1:{free_port()}/"  # nobody listens: the host keeps retrying
    token = home / "token"
    token.write_text("s3cret-token-value")
    out = home / "first.out"
    with out.open("wb") as sink:
        first = subprocess.Popen(
            [*CLI, "--profile", "laptop", "node", "run", "--url", url, "--token-file", str(token)],
            env=clean_env(home),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        log = home / ".openclaw-laptop" / "logs" / "node.log"
        wait_until(lambda: log.exists() and "connection refused" in log.read_text(), 20, "a retry")
        second = run_cli(home, "--url", url, "--token-file", str(token))
        assert second.returncode == 78, second
        assert "a node host is already running for this profile" in second.stderr
        first.send_signal(signal.SIGINT)
        assert first.wait(timeout=15) == 0
        text = log.read_text()
        # the same failure is logged once, however many times it is retried
        assert text.count("connection refused") == 1
        assert "s3cret-token-value" not in text + out.read_text()
        assert (log.stat().st_mode & 0o777) == 0o600
        identity = home / ".openclaw-laptop" / "identity" / "node-device.json"
        assert (identity.stat().st_mode & 0o777) == 0o600
    finally:
        if first.poll() is None:
            first.kill()
        first.wait(timeout=10)


def test_sigterm_while_a_connect_hangs(home: Path) -> None:
    # a port that accepts TCP but never answers the WebSocket upgrade (connect timeout 10 s)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"ws://127.0.0.1:{silent.getsockname()[1]}/"
        proc = subprocess.Popen(
            [*CLI, "--profile", "laptop", "node", "run", "--url", url, "--token", "x"],
            env=clean_env(home),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        conn = None
        try:
            status = home / ".openclaw-laptop" / "nodehost.status.json"
            wait_until(status.exists, 20, "the host to be up")
            conn, _ = silent.accept()  # its connect is in flight now
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=8) == 0  # not held until the 10 s connect timeout
            assert not status.exists()  # removed on the way out
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
            if conn is not None:
                conn.close()


@pytest.mark.parametrize("bound", ["ws://127.0.0.1:9/", None])
def test_a_stored_token_is_sent_only_to_the_url_it_was_stored_for(
    home: Path, bound: str | None
) -> None:
    """``node start --url A --token`` stores the token for A; a ``node run --url B`` on the
    same profile must not present it to B (nor a file that names no URL, to anyone)."""
    state = home / ".openclaw-laptop"
    state.mkdir()
    (state / "nodehost-token").write_text("secret-for-a\n")
    if bound is not None:
        (state / "nodehost-token.url").write_text(bound + "\n")
    done = run_cli(home, "--url", "ws://127.0.0.1:1/")
    assert done.returncode == 1, done
    assert done.stderr.startswith("error: no credentials for ws://127.0.0.1:1/"), done.stderr
    assert "secret-for-a" not in done.stderr + done.stdout


def test_node_start_with_a_token_but_no_url_for_an_undefined_host_stores_nothing(
    home: Path,
) -> None:
    done = node_start(home, "--token", "x")
    assert done.returncode == 2, done
    assert done.stderr.startswith("error: no node host laptop yet"), done.stderr
    assert not (home / ".openclaw-laptop" / "nodehost-token").exists()


def test_node_start_refuses_a_url_with_credentials(home: Path) -> None:
    done = node_start(home, "--url", "ws://me:s3cret@127.0.0.1:9/")
    assert done.returncode == 2, done
    assert done.stderr.startswith("error: --url must not contain credentials"), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "s3cret" not in done.stderr
    assert not (home / ".openclaw-supervisor" / "nodes.json").exists()
