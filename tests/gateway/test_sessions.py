"""The session store (gateway/sessions.py) and the session-key rule (protocol/chat.py)."""

from __future__ import annotations

import logging
import sqlite3
import stat
import time
from pathlib import Path

import pytest

from openclaw_multi.gateway import sessions
from openclaw_multi.gateway.sessions import (
    FILE_NAME,
    UNANSWERED,
    SessionStore,
    SessionStoreError,
)
from openclaw_multi.protocol.chat import canonical_session_key, history_limit


@pytest.mark.parametrize(
    ("raw", "agent", "expected"),
    [
        ("main", None, "agent:main:main"),
        ("", None, "agent:main:main"),
        ("  MAIN ", None, "agent:main:main"),
        (None, "Ops", "agent:ops:main"),
        ("agent:main:main", None, "agent:main:main"),
        ("AGENT:Ops:telegram:42", None, "agent:ops:telegram:42"),
        ("telegram:42", None, "agent:main:telegram:42"),
        ("webchat:abc", "ops", "agent:ops:webchat:abc"),
        ("agent:", None, "agent:main:agent:"),  # not an agent key: scoped like any other
    ],
)
def test_session_keys_follow_the_reference(
    raw: str | None, agent: str | None, expected: str
) -> None:
    assert canonical_session_key(raw, agent) == expected


def test_history_limit_defaults_and_caps() -> None:
    assert history_limit(None) == 200
    assert history_limit(5) == 5
    assert history_limit(10_000) == 1000


def test_messages_survive_a_reopen_in_order(tmp_path: Path) -> None:
    store = SessionStore.open(tmp_path)
    user = store.append(
        "agent:main:main", "user", "hi", run_id="r1", channel="telegram", sender="7"
    )
    assert user["role"] == "user" and user["content"] == [{"type": "text", "text": "hi"}]
    assert user["runId"] == "r1" and user["channel"] == "telegram" and user["sender"] == "7"
    assert abs(user["timestamp"] - time.time() * 1000) < 60_000
    store.append("agent:main:main", "assistant", "hello", run_id="r1")
    store.append("agent:main:main", "assistant", "", run_id="r2", stop_reason="error", error="boom")
    store.append("agent:main:other", "user", "elsewhere")
    store.close()

    again = SessionStore.open(tmp_path)
    history = again.history("agent:main:main", 10)
    assert [m["role"] for m in history] == ["user", "assistant", "assistant"]
    assert history[2]["stopReason"] == "error" and history[2]["errorMessage"] == "boom"
    assert history[2]["content"] == []
    # the backend's context leaves errors out
    assert again.transcript("agent:main:main", 10) == [("user", "hi"), ("assistant", "hello")]
    assert again.history("agent:main:main", 1)[0]["content"] == []
    assert again.history("agent:main:main", 2)[0]["content"][0]["text"] == "hello"
    session = again.session("agent:main:main")
    assert session is not None and session["messages"] == 3 and session["sessionId"]
    assert again.session("agent:main:nope") is None
    again.close()


def test_store_file_is_private(tmp_path: Path) -> None:
    SessionStore.open(tmp_path).close()
    assert stat.S_IMODE((tmp_path / FILE_NAME).stat().st_mode) == 0o600


def test_a_corrupt_file_is_moved_aside_with_a_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / FILE_NAME).write_bytes(b"this is not a database" * 100)
    with caplog.at_level(logging.WARNING, logger="openclaw.gateway"):
        store = SessionStore.open(tmp_path)
    aside = list(tmp_path.glob(f"{FILE_NAME}.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not")
    assert any(
        "moved aside" in r.getMessage() and str(aside[0]) in r.getMessage() for r in caplog.records
    )
    store.append("agent:main:main", "user", "fresh start")
    assert len(store.history("agent:main:main", 5)) == 1
    store.close()


def test_a_full_disk_is_an_error_and_never_moves_the_sessions_aside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SessionStore.open(tmp_path)
    store.append("agent:main:main", "user", "keep me")
    store.close()

    def full(path: Path) -> sqlite3.Connection:
        err = sqlite3.OperationalError("database or disk is full")
        err.sqlite_errorcode = sqlite3.SQLITE_FULL  # type: ignore[attr-defined]
        raise err

    monkeypatch.setattr(sessions, "_connect", full)
    with pytest.raises(SessionStoreError, match="No space left on device"):
        SessionStore.open(tmp_path)
    assert not list(tmp_path.glob(f"{FILE_NAME}.corrupt-*"))
    monkeypatch.undo()
    store = SessionStore.open(tmp_path)
    assert [m["content"][0]["text"] for m in store.history("agent:main:main", 5)] == ["keep me"]
    store.close()


def test_an_accepted_message_is_kept_until_its_run_stores_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = SessionStore.open(tmp_path)
    key = "agent:main:telegram:7"
    store.accept("r1", key, "answered", channel="telegram", sender="7")
    store.accept("r1", key, "answered", channel="telegram", sender="7")  # same run: once
    store.accept("r2", key, "still queued", channel="telegram", sender="7")
    assert store.history(key, 10) == []  # waiting is not history yet
    store.append(key, "user", "answered", run_id="r1", channel="telegram", sender="7")
    store.append(key, "assistant", "ok", run_id="r1", channel="telegram")
    store.close()  # as if the gateway died with r2 still waiting

    with caplog.at_level(logging.WARNING, logger="openclaw.gateway"):
        again = SessionStore.open(tmp_path)
    history = again.history(key, 10)
    assert [(m["role"], m["content"][0]["text"] if m["content"] else "") for m in history] == [
        ("user", "answered"),
        ("assistant", "ok"),
        ("user", "still queued"),
        ("assistant", ""),
    ]
    assert history[2]["runId"] == "r2" and history[2]["sender"] == "7"
    assert history[3]["stopReason"] == "aborted"
    assert history[3]["errorMessage"] == UNANSWERED
    assert "1 message(s) accepted before the gateway stopped" in caplog.text
    again.close()
    third = SessionStore.open(tmp_path)  # recovered once, not again
    assert len(third.history(key, 10)) == 4
    third.close()


def test_a_failed_write_is_a_store_error(tmp_path: Path) -> None:
    store = SessionStore.open(tmp_path)
    store._db.execute("PRAGMA query_only=1")  # every write now fails inside SQLite
    with pytest.raises(SessionStoreError, match="cannot store message"):
        store.append("agent:main:main", "user", "lost?")
    with pytest.raises(SessionStoreError, match="cannot store message"):
        store.accept("r", "agent:main:main", "lost?")
    store.close()


def test_an_unusable_state_dir_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SessionStoreError, match="cannot open session store"):
        SessionStore.open(blocker)


def test_append_is_cheap_enough_to_stay_on_the_loop(tmp_path: Path) -> None:
    store = SessionStore.open(tmp_path)
    started = time.perf_counter()
    for i in range(200):
        store.append("agent:main:main", "user", f"message {i}")
    per_append_ms = (time.perf_counter() - started) * 1000 / 200
    store.close()
    # measured ~0.2 ms on a loaded 2-core box; generous, but an fsync per write would show
    assert per_append_ms < 5, per_append_ms
    db = sqlite3.connect(tmp_path / FILE_NAME)
    try:
        assert db.execute("SELECT count(*) FROM messages").fetchone() == (200,)
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        db.close()


# What version 1 of the store wrote (no tool columns), as a file from before the migration.
V1_SCHEMA = """
CREATE TABLE sessions (
    key TEXT PRIMARY KEY, session_id TEXT NOT NULL, agent_id TEXT NOT NULL, channel TEXT,
    created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
    message_count INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT, session_key TEXT NOT NULL, role TEXT NOT NULL,
    text TEXT NOT NULL, ts INTEGER NOT NULL, run_id TEXT, channel TEXT, sender TEXT,
    stop_reason TEXT, error TEXT
);
CREATE INDEX messages_by_session ON messages (session_key, id);
CREATE TABLE inbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL UNIQUE,
    session_key TEXT NOT NULL, agent_id TEXT NOT NULL, text TEXT NOT NULL, ts INTEGER NOT NULL,
    channel TEXT, sender TEXT
);
INSERT INTO sessions VALUES ('agent:main:main', 's1', 'main', NULL, 1, 2, 2);
INSERT INTO messages (session_key, role, text, ts, run_id) VALUES
    ('agent:main:main', 'user', 'old question', 1, 'r0'),
    ('agent:main:main', 'assistant', 'old answer', 2, 'r0');
INSERT INTO inbox (run_id, session_key, agent_id, text, ts) VALUES
    ('r1', 'agent:main:main', 'main', 'left by a crash', 3);
PRAGMA user_version=1;
"""


def version_of(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("PRAGMA user_version").fetchone()[0])
    finally:
        db.close()


def test_a_version_1_file_is_migrated_and_keeps_its_messages(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    old = sqlite3.connect(tmp_path / FILE_NAME)
    old.executescript(V1_SCHEMA)
    old.close()
    with caplog.at_level(logging.INFO, logger="openclaw.gateway"):
        store = SessionStore.open(tmp_path)
    assert "schema migrated from version 1 to 2" in caplog.text
    history = store.history("agent:main:main", 10)
    assert [(m["role"], m["content"]) for m in history[:2]] == [
        ("user", [{"type": "text", "text": "old question"}]),
        ("assistant", [{"type": "text", "text": "old answer"}]),
    ]
    # the inbox a crash left is recovered as before
    assert [m["content"][0]["text"] for m in history[2:3]] == ["left by a crash"]
    assert history[3]["stopReason"] == "aborted"
    # the new columns work
    call = {"type": "toolCall", "id": "c1", "name": "test_echo", "arguments": {"text": "hi"}}
    store.append("agent:main:main", "assistant", "", run_id="r2", blocks=[call])
    tool = {"toolCallId": "c1", "toolName": "test_echo", "isError": False}
    store.append("agent:main:main", "toolResult", '{"text": "hi"}', run_id="r2", tool=tool)
    store.close()
    assert version_of(tmp_path / FILE_NAME) == sessions.SCHEMA_VERSION == 2

    again = SessionStore.open(tmp_path)
    last = again.history("agent:main:main", 2)
    assert last[0]["role"] == "assistant" and last[0]["content"] == [call]
    assert last[1] == {
        "role": "toolResult",
        "content": [{"type": "text", "text": '{"text": "hi"}'}],
        "toolCallId": "c1",
        "toolName": "test_echo",
        "isError": False,
        "timestamp": last[1]["timestamp"],
        "id": last[1]["id"],
        "runId": "r2",
    }
    assert again.transcript("agent:main:main", 10) == [
        ("user", "old question"),
        ("assistant", "old answer"),
        ("user", "left by a crash"),
    ]
    again.close()


def test_a_file_from_a_newer_version_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / FILE_NAME
    SessionStore.open(tmp_path).close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version=9")
    db.close()
    before = path.read_bytes()
    with pytest.raises(SessionStoreError, match="schema version 9 is newer than this gateway's"):
        SessionStore.open(tmp_path)
    assert path.read_bytes() == before and version_of(path) == 9
    assert not list(tmp_path.glob(f"{FILE_NAME}.corrupt-*"))
