"""JSON files of records keyed by id, as the pairing stores keep them (devices/, nodes/).

A :class:`RecordFile` is one ``{id: record}`` JSON object of msgspec Structs: read once,
rewritten whole and atomically (profiles/atomic.py), mode 0600 in a 0700 directory. A file
that cannot be read starts empty (logged); one that does not decode is moved aside
(``<name>.corrupt-<unix time>.json``) for a person to look at, never overwritten, and starts
empty: an unreadable approval file approves nothing.

:class:`PairingFiles` is the pair both pairing stores have: ``paired.json`` (what an
operator approved) and ``pending.json`` (what waits for one), held in memory as two dicts.
Decisions are saved at once (:meth:`PairingFiles.commit_paired`); bookkeeping (last-seen
times, a refreshed request's time) is marked with :meth:`PairingFiles.save_paired_soon` /
:meth:`~PairingFiles.save_pending_soon` and written at most :data:`BOOKKEEPING_FLUSH_S`
later in one write, or by :meth:`~PairingFiles.flush` at shutdown: an fsynced rewrite on
every connect would block the event loop, and losing a few seconds of last-seen times to a
crash is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Generic, TypeVar

import msgspec

from ..profiles.atomic import write_file_atomic

__all__ = ["BOOKKEEPING_FLUSH_S", "PairingFiles", "RecordFile", "without"]

_LOG = logging.getLogger("openclaw.gateway")
BOOKKEEPING_FLUSH_S = 5.0
"""Bookkeeping marked with ``save_*_soon`` reaches the files at most this long later."""
_PAIRED = "paired"
_PENDING = "pending"

R = TypeVar("R", bound=msgspec.Struct)
P = TypeVar("P", bound=msgspec.Struct)
Q = TypeVar("Q", bound=msgspec.Struct)


class RecordFile(Generic[R]):
    """One ``{id: record}`` JSON file of ``record_type`` Structs.

    Args:
        path: The file; its directory is created (0700) on the first save.
        record_type: The Struct each value decodes to.
        what: What the file is, for log lines (``"node pairing"``).
    """

    def __init__(self, path: Path, record_type: type[R], *, what: str) -> None:
        self.path = path
        self.what = what
        self._decoder: msgspec.json.Decoder[dict[str, R]] = msgspec.json.Decoder(
            dict[str, record_type]  # type: ignore[valid-type]
        )

    def load(self) -> dict[str, R]:
        """The records; none when the file is missing, unreadable or corrupt (module doc)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as err:
            _LOG.error("cannot read %s: %s; starting with none", self.path, err.strerror)
            return {}
        try:
            return self._decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as err:
            aside = self.path.with_suffix(f".corrupt-{int(time.time())}.json")
            with contextlib.suppress(OSError):
                os.replace(self.path, aside)
            _LOG.error(
                "%s is not a %s file (%s); moved aside, starting with none",
                self.path,
                self.what,
                err,
            )
            return {}

    def save(self, records: Mapping[str, R]) -> None:
        """Replace the file with ``records`` (atomically, 0600).

        Raises:
            OSError: The directory or file cannot be written (read-only, disk full...); the
                file is then as it was.
        """
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        data = msgspec.json.format(msgspec.json.encode(records))
        write_file_atomic(self.path, data, mode=0o600)


class PairingFiles(Generic[P, Q]):
    """``paired.json`` and ``pending.json`` in ``directory``, loaded once into two dicts.

    Args:
        directory: Where the two files live (created on the first save, 0700).
        paired_type: The Struct of an approved record.
        pending_type: The Struct of a pending request.
        what: What the files are, for log lines.
    """

    def __init__(
        self, directory: Path, paired_type: type[P], pending_type: type[Q], *, what: str
    ) -> None:
        self.directory = directory
        self.paired_file = RecordFile(directory / "paired.json", paired_type, what=what)
        self.pending_file = RecordFile(directory / "pending.json", pending_type, what=what)
        self.what = what
        self.paired: dict[str, P] = self.paired_file.load()
        self.pending: dict[str, Q] = self.pending_file.load()
        self._unsaved: set[str] = set()  # _PAIRED, _PENDING: bookkeeping not written yet
        self._flush_timer: asyncio.TimerHandle | None = None

    def save_paired(self) -> None:
        """Write ``paired`` as it is in memory (raises OSError, see :meth:`RecordFile.save`)."""
        self.paired_file.save(self.paired)
        self._unsaved.discard(_PAIRED)

    def save_pending(self) -> None:
        """Write ``pending`` as it is in memory (raises OSError, see :meth:`RecordFile.save`)."""
        self.pending_file.save(self.pending)
        self._unsaved.discard(_PENDING)

    def save_paired_soon(self) -> None:
        """Bookkeeping in ``paired`` changed in memory: write it within
        :data:`BOOKKEEPING_FLUSH_S`, not now (module doc). Never raises."""
        self._write_soon(_PAIRED)

    def save_pending_soon(self) -> None:
        """As :meth:`save_paired_soon`, for ``pending``."""
        self._write_soon(_PENDING)

    def _write_soon(self, which: str) -> None:
        self._unsaved.add(which)
        if self._flush_timer is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a tool, a test): nothing to defer to
            self.flush()
            return
        self._flush_timer = loop.call_later(BOOKKEEPING_FLUSH_S, self.flush)

    def flush(self) -> None:
        """Write the bookkeeping kept in memory (the timer's job; also called at shutdown).

        A failed write is logged, not raised: it runs from a timer or the shutdown path.
        """
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        unsaved, self._unsaved = self._unsaved, set()
        for which, save in ((_PAIRED, self.save_paired), (_PENDING, self.save_pending)):
            if which in unsaved:
                try:
                    save()
                except OSError as err:
                    _LOG.error("cannot save %s state: %s", self.what, err)

    def commit_paired(self, records: dict[str, P]) -> None:
        """Save ``records`` as ``paired.json``, then make them ``paired``.

        Build the new state, save, swap: a decision is in effect only once it would survive
        a restart.

        Raises:
            OSError: Not saved; ``paired`` is unchanged.
        """
        self.paired_file.save(records)
        self.paired = records
        self._unsaved.discard(_PAIRED)  # the whole of it was written

    def commit_pending(self, records: dict[str, Q]) -> None:
        """Save ``records`` as ``pending.json``, then make them ``pending``.

        Raises:
            OSError: Not saved; ``pending`` is unchanged.
        """
        self.pending_file.save(records)
        self.pending = records
        self._unsaved.discard(_PENDING)


def without(records: dict[str, R], keys: set[str]) -> dict[str, R]:
    """A copy of ``records`` without ``keys``: a new state, built before it is saved."""
    return {k: v for k, v in records.items() if k not in keys}
