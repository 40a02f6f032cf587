"""Sessions and their messages, kept in one SQLite file per profile (docs/agent.md).

``<state>/sessions.sqlite3`` (0600) holds three tables: ``sessions`` (one row per canonical
session key, protocol/chat.py), ``messages`` (every user message, assistant reply and
error, in arrival order, with what the agent did between them: an assistant message's
``toolCall`` blocks and one ``toolResult`` message per call, the reference's transcript
shapes) and ``inbox`` (messages accepted but whose run has not started:
they wait behind another run of their session). A user message is written to the inbox
when it is accepted, before anyone is told it was (a ``chat.send`` answer, Telegram's
offset moving past it), and moved to ``messages`` in one transaction when its run starts;
one left there by a crash is moved on the next open, followed by an ``aborted`` entry, so
an accepted message is never lost. The gateway is the one writer: WAL mode, ``synchronous=NORMAL``
(a commit survives a gateway crash; only an OS crash may lose the last few), each append one
short transaction done inline on the loop thread: measured ~0.2 ms per append (two per run)
and ~1.2 ms for a 200-message history on the shared 2-core box; a thread hop would cost
about as much and make message order harder to keep (docs/agent.md, Measurements).

The schema's version is ``PRAGMA user_version``: a file of an older version is migrated in
place on open, in one transaction (version 1 had no tool columns: its messages stay, as
text); one of a newer version is refused (:class:`SessionStoreError`), never altered.

A file SQLite cannot read is moved aside (``sessions.sqlite3.corrupt-<ms>``) with one
warning naming both paths, and a fresh store is started: the gateway keeps running.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

from ..errors import OpenClawError

_LOG = logging.getLogger("openclaw.gateway")
FILE_NAME = "sessions.sqlite3"
SCHEMA_VERSION = 2
_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    key TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    channel TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    message_count INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_key TEXT NOT NULL,
    role TEXT NOT NULL,
    text TEXT NOT NULL,
    ts INTEGER NOT NULL,
    run_id TEXT,
    channel TEXT,
    sender TEXT,
    stop_reason TEXT,
    error TEXT,
    blocks TEXT,
    tool TEXT
);
CREATE INDEX IF NOT EXISTS messages_by_session ON messages (session_key, id);
CREATE TABLE IF NOT EXISTS inbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL UNIQUE,
    session_key TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    text TEXT NOT NULL,
    ts INTEGER NOT NULL,
    channel TEXT,
    sender TEXT
);
"""
# Version 1 -> 2: ``blocks`` (JSON list of an assistant message's non-text content blocks,
# the ``toolCall`` ones) and ``tool`` (JSON ``{toolCallId, toolName, isError, details?}`` of
# a ``toolResult`` message).
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    2: (
        "ALTER TABLE messages ADD COLUMN blocks TEXT",
        "ALTER TABLE messages ADD COLUMN tool TEXT",
    ),
}
_COLUMNS = "id, role, text, ts, run_id, channel, sender, stop_reason, error, blocks, tool"
UNANSWERED = "aborted (the gateway stopped before this message was answered)"


class SessionStoreError(OpenClawError):
    """The session store could not write or read (disk full, file removed, I/O error)."""


class SessionStore:
    """The profile's sessions and messages (module docstring)."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        """Internal: use :meth:`open`."""
        self._db = db
        self.path = path

    @classmethod
    def open(cls, state_dir: Path) -> SessionStore:
        """Open (or create) ``<state_dir>/sessions.sqlite3``; move a corrupt file aside.

        Raises:
            SessionStoreError: The file cannot be created at all (e.g. the state dir is
                read-only); a corrupt file is not an error.
        """
        path = state_dir / FILE_NAME
        try:
            store = cls(_connect(path), path)
        except sqlite3.DatabaseError as err:
            if not _is_corrupt(err):  # a full disk or an I/O error: never a reason to move data
                raise SessionStoreError(
                    f"cannot open session store {path}: {_reason(err)}"
                ) from None
            aside = path.with_name(f"{FILE_NAME}.corrupt-{int(time.time() * 1000)}")
            _LOG.warning(
                "session store %s is unreadable (%s): moved aside to %s, starting a new one",
                path,
                err,
                aside,
            )
            try:
                os.replace(path, aside)
                for suffix in ("-wal", "-shm"):
                    side = path.with_name(path.name + suffix)
                    if side.exists():
                        os.replace(side, aside.with_name(aside.name + suffix))
                return cls(_connect(path), path)
            except (OSError, sqlite3.Error) as again:
                raise SessionStoreError(f"cannot open session store {path}: {again}") from None
        except OSError as err:
            raise SessionStoreError(f"cannot open session store {path}: {err}") from None
        store.recover_inbox()
        return store

    def close(self) -> None:
        """Close the file (pending WAL content is checkpointed by SQLite)."""
        self._db.close()

    # -- writes ----------------------------------------------------------------------------
    def accept(
        self,
        run_id: str,
        session_key: str,
        text: str,
        *,
        agent_id: str = "main",
        channel: str | None = None,
        sender: str | None = None,
    ) -> None:
        """Keep an accepted user message until its run stores it (:meth:`append` with role
        ``user`` and the same ``run_id`` takes it out). A second call for a run is a no-op.

        Raises:
            SessionStoreError: The write failed.
        """
        now = int(time.time() * 1000)
        try:
            with self._db:
                self._db.execute(
                    "INSERT OR IGNORE INTO inbox (run_id, session_key, agent_id, text, ts,"
                    " channel, sender) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (run_id, session_key, agent_id, text, now, channel, sender),
                )
        except sqlite3.Error as err:
            raise SessionStoreError(f"cannot store message in {self.path}: {err}") from None

    def recover_inbox(self) -> int:
        """Move messages a crash left in the inbox to their sessions (each followed by an
        ``aborted`` entry); how many. A failure is logged: they stay for the next open."""
        try:
            rows = self._db.execute(
                "SELECT run_id, session_key, agent_id, text, ts, channel, sender"
                " FROM inbox ORDER BY seq"
            ).fetchall()
            for run_id, session_key, agent_id, text, ts, channel, sender in rows:
                common = {"agent_id": agent_id, "run_id": run_id, "channel": channel}
                self.append(session_key, "user", text, sender=sender, ts=ts, **common)
                self.append(
                    session_key, "assistant", "", stop_reason="aborted", error=UNANSWERED, **common
                )
        except (sqlite3.Error, SessionStoreError) as err:
            _LOG.error("session store %s: unanswered messages not recovered: %s", self.path, err)
            return 0
        if rows:
            _LOG.warning(
                "session store: %d message(s) accepted before the gateway stopped were never"
                " answered; they are in their sessions, marked aborted",
                len(rows),
            )
        return len(rows)

    def append(
        self,
        session_key: str,
        role: str,
        text: str,
        *,
        agent_id: str = "main",
        run_id: str | None = None,
        channel: str | None = None,
        sender: str | None = None,
        stop_reason: str | None = None,
        error: str | None = None,
        ts: int | None = None,
        blocks: list[dict[str, Any]] | None = None,
        tool: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Store one message (creating its session) and return it in wire form; a user
        message leaves the inbox in the same transaction.

        ``blocks`` are content blocks after the text (an assistant message's ``toolCall``
        blocks); ``tool`` makes it a ``toolResult`` message (``toolCallId``, ``toolName``,
        ``isError``, ``details``?), ``text`` being the result.

        Raises:
            SessionStoreError: The write failed; nothing was stored.
        """
        now = int(time.time() * 1000) if ts is None else ts
        blocks_json = json.dumps(blocks, ensure_ascii=False) if blocks else None
        tool_json = json.dumps(tool, ensure_ascii=False) if tool else None
        # The stored columns after session_key, in the order _message reads them (after id).
        fields = (
            role,
            text,
            now,
            run_id,
            channel,
            sender,
            stop_reason,
            error,
            blocks_json,
            tool_json,
        )
        try:
            with self._db:  # one transaction: the session row, the message, the inbox
                if role == "user" and run_id:
                    self._db.execute("DELETE FROM inbox WHERE run_id = ?", (run_id,))
                self._db.execute(
                    "INSERT INTO sessions (key, session_id, agent_id, channel, created_at,"
                    " updated_at, message_count) VALUES (?, ?, ?, ?, ?, ?, 1)"
                    " ON CONFLICT(key) DO UPDATE SET updated_at = excluded.updated_at,"
                    " message_count = message_count + 1",
                    (session_key, str(uuid.uuid4()), agent_id, channel, now, now),
                )
                cursor = self._db.execute(
                    "INSERT INTO messages (session_key, role, text, ts, run_id, channel, sender,"
                    " stop_reason, error, blocks, tool) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (session_key, *fields),
                )
        except sqlite3.Error as err:
            raise SessionStoreError(f"cannot store message in {self.path}: {err}") from None
        return _message((cursor.lastrowid, *fields))

    # -- reads -----------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        """``{sessions, messages}`` stored (for ``status``); zeros if the store cannot say."""
        try:
            row = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(message_count), 0) FROM sessions"
            ).fetchone()
        except sqlite3.Error as err:
            _LOG.error("session store %s: cannot count: %s", self.path, err)
            return {"sessions": 0, "messages": 0}
        return {"sessions": int(row[0]), "messages": int(row[1])}

    def history(self, session_key: str, limit: int) -> list[dict[str, Any]]:
        """The last ``limit`` messages of a session, oldest first, in wire form."""
        return [_message(row) for row in self._last_rows(session_key, limit)]

    def transcript(self, session_key: str, limit: int) -> list[tuple[str, str]]:
        """``(role, text)`` of the last ``limit`` user/assistant turns, oldest first: errors,
        tool calls and tool results left out (a backend gets the conversation, not the
        steps of earlier runs)."""
        try:
            rows = self._db.execute(
                "SELECT role, text FROM messages WHERE session_key = ?"
                " AND role IN ('user', 'assistant') AND error IS NULL AND text != ''"
                " AND blocks IS NULL ORDER BY id DESC LIMIT ?",
                (session_key, limit),
            ).fetchall()
        except sqlite3.Error as err:
            raise SessionStoreError(f"cannot read session store {self.path}: {err}") from None
        rows.reverse()
        return [(role, text) for role, text in rows]

    def session(self, session_key: str) -> dict[str, Any] | None:
        """The session row, or None when the session has no messages yet."""
        try:
            row = self._db.execute(
                "SELECT key, session_id, agent_id, channel, created_at, updated_at,"
                " message_count FROM sessions WHERE key = ?",
                (session_key,),
            ).fetchone()
        except sqlite3.Error as err:
            raise SessionStoreError(f"cannot read session store {self.path}: {err}") from None
        if row is None:
            return None
        keys = ("key", "sessionId", "agentId", "channel", "createdAt", "updatedAt", "messages")
        return dict(zip(keys, row, strict=True))

    def _last_rows(self, session_key: str, limit: int) -> list[tuple[Any, ...]]:
        try:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM messages WHERE session_key = ? ORDER BY id DESC LIMIT ?",
                (session_key, limit),
            ).fetchall()
        except sqlite3.Error as err:
            raise SessionStoreError(f"cannot read session store {self.path}: {err}") from None
        rows.reverse()
        return rows


class _CorruptStore(sqlite3.DatabaseError):
    """``PRAGMA quick_check`` found damage."""


def _is_corrupt(err: sqlite3.DatabaseError) -> bool:
    code = getattr(err, "sqlite_errorcode", None)
    return isinstance(err, _CorruptStore) or code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


def _reason(err: sqlite3.Error) -> str:
    # SQLite says "database or disk is full"; say it as the rest of the tool does.
    if getattr(err, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
        return f"{os.strerror(errno.ENOSPC)} ({err})"
    return str(err)


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Conversations are private: create the file 0600 before SQLite opens it.
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    db = sqlite3.connect(path, isolation_level="DEFERRED")
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        check = db.execute("PRAGMA quick_check").fetchone()
        if check is None or check[0] != "ok":
            raise _CorruptStore(f"quick_check: {check[0] if check else 'no answer'}")
        _migrate(db)
    except BaseException:
        db.close()
        raise
    return db


class _NewerSchema(sqlite3.DatabaseError):
    """The file was written by a newer version of the gateway (not corrupt: left alone)."""


def _migrate(db: sqlite3.Connection) -> None:
    """Create the tables, or bring an older file to :data:`SCHEMA_VERSION` (one transaction:
    a failure leaves the file as it was)."""
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise _NewerSchema(
            f"schema version {version} is newer than this gateway's ({SCHEMA_VERSION})"
        )
    if version == SCHEMA_VERSION:
        return
    existing = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    db.execute("BEGIN IMMEDIATE")
    try:
        if "messages" in existing:  # an older file: add what later versions added
            columns = {row[1] for row in db.execute("PRAGMA table_info(messages)")}
            for target in range(max(version, 1) + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[target]:
                    column = statement.split()[-2]
                    if column not in columns:
                        db.execute(statement)
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    if version:
        _LOG.info("session store: schema migrated from version %d to %d", version, SCHEMA_VERSION)


def _message(row: tuple[Any, ...]) -> dict[str, Any]:
    """A stored row as the reference's transcript message (role, content blocks, timestamp):
    ``user``/``assistant`` with ``text`` and ``toolCall`` blocks, or ``toolResult``."""
    msg_id, role, text, ts, run_id, channel, sender, stop_reason, error, blocks, tool = row
    content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    if blocks:
        content += json.loads(blocks)
    message: dict[str, Any] = {"role": role, "content": content}
    if tool:
        message.update(json.loads(tool))  # toolCallId, toolName, isError, details?
    message["timestamp"] = ts
    message["id"] = str(msg_id)
    if run_id:
        message["runId"] = run_id
    if channel:
        message["channel"] = channel
    if sender:
        message["sender"] = sender
    if stop_reason:
        message["stopReason"] = stop_reason
    if error:
        message["errorMessage"] = error
    return message
