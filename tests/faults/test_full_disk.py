"""A full disk under the home (a small tmpfs, filled up): logs and state cannot be written.

Expected, and documented in docs/reliability.md:

* a gateway that serves keeps serving (a log line that cannot be written is dropped), and
  the supervisor keeps answering;
* a gateway that cannot write its identity file cannot run: it says why on the notify
  socket (``No space left on device``) and exits 1; the supervisor retries with backoff and
  gives up (FATAL) at the burst limit, with that reason in ``lastError`` -- a bounded loop
  that names its cause, never a silent one;
* ``desired.json`` keeps its last whole content (an atomic write that fails leaves it);
* once space is freed, ``start`` brings the profile up.

Needs root to mount a tmpfs; skipped otherwise.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from openclaw_multi.client.control import supervisor_dir
from openclaw_multi.protocol.control import Start
from openclaw_multi.supervisor.desired import load_desired
from tests.faults.harness import FaultHome, readyz

pytestmark = pytest.mark.e2e

TMPFS_SIZE = "24m"


@pytest.fixture
def small_home() -> Iterator[FaultHome]:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a tmpfs")
    home = Path(tempfile.mkdtemp(prefix="ocd-"))
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0700", "tmpfs", str(home)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        home.rmdir()
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.strip()}")
    harness = FaultHome(home)
    try:
        yield harness
    finally:
        harness.cleanup()
        subprocess.run(["umount", "-l", str(home)], check=False)
        with contextlib.suppress(OSError):
            home.rmdir()


def fill(path: Path) -> None:
    """Write ``path`` until the file system is full (bounded: the tmpfs is small)."""
    chunk = b"\0" * (1 << 20)
    with path.open("wb", buffering=0) as f:
        for size in (1 << 20, 1 << 12, 1):
            for _ in range(64 * 1024):
                try:
                    f.write(chunk[:size])
                except OSError as err:
                    assert err.errno == errno.ENOSPC, err
                    break
    with pytest.raises(OSError):
        (path.parent / "probe").write_bytes(b"x" * 8192)


def test_full_disk_serving_continues_and_starting_fails_loudly(small_home: FaultHome) -> None:
    fh = small_home
    port = fh.profile("work")
    fh.profile("other")
    reply = fh.request(Start(profiles=["work"]), timeout=30)
    assert reply.ok, reply.error
    desired = supervisor_dir(fh.home) / "desired.json"
    assert load_desired(desired) == {"work": True}

    filler = fh.home / "filler"
    fill(filler)
    # Serving goes on; the supervisor still answers.
    assert readyz(port) == 200
    assert fh.status("work").state == "RUNNING"

    reply = fh.request(Start(profiles=["other"]), timeout=30)
    assert not reply.ok
    assert "No space left on device" in (reply.error or ""), reply.error
    status = fh.wait_state("other", "FATAL")
    assert "gave up after 3 starts" in (status.last_error or "")
    assert "No space left on device" in (status.last_error or "")
    # Whole, old or new: a save fails as a whole (or lands, if a freed page let it through).
    assert load_desired(desired) in ({"work": True}, {"work": True, "other": True})
    assert readyz(port) == 200
    fh.check({"work"}, skip_config=frozenset())
    row = fh.listing()["other"]
    assert row["state"] == "FATAL" and "No space left on device" in row["lastError"]

    filler.unlink()
    reply = fh.request(Start(profiles=["other"]), timeout=30)
    assert reply.ok, reply.error
    fh.check({"work", "other"})
    assert load_desired(desired) == {"work": True, "other": True}
