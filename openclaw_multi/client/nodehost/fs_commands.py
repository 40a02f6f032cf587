"""``fs.list`` and ``fs.read``: read-only access below the configured roots (docs/nodes.md).

Every path goes through :func:`~.rules.resolve_in_roots` (absolute, realpath'd, inside a
root). The canonical path is then opened with ``O_NOFOLLOW`` and the open descriptor's real
location is checked again (``/proc/self/fd`` on Linux), so a symlink swapped in between the
check and the open cannot lead outside the roots. Disk work runs in a worker thread: a slow
disk never stalls the node's link.
"""

from __future__ import annotations

import asyncio
import base64
import errno
import mimetypes
import os
import stat
from typing import Any, Final

from .commands import CommandError, Invocation
from .rules import PathRefused, inside, resolve_in_roots

__all__ = ["fs_list", "fs_read"]

LIST_DEFAULT_ENTRIES: Final = 200
LIST_MAX_ENTRIES: Final = 5000


def _refused(err: PathRefused) -> CommandError:
    return CommandError(err.code, err.message)


def _fs_error(err: OSError, what: str) -> CommandError:
    if err.errno == errno.ENOENT:
        return CommandError("NOT_FOUND", f"{what} not found")
    if err.errno in (errno.EACCES, errno.EPERM):
        return CommandError("PERMISSION_DENIED", f"permission denied: {what}")
    if err.errno == errno.ELOOP:  # the canonical path became a symlink after the check
        return CommandError("PATH_POLICY_DENIED", f"{what} changed while being opened")
    return CommandError("READ_ERROR", f"cannot read {what}: {err.strerror or err}")


def _fd_location(fd: int) -> str | None:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None  # no procfs (macOS): the O_NOFOLLOW open on a canonical path stands


def _open_inside(canonical: str, roots: tuple[str, ...], flags: int) -> int:
    fd = os.open(canonical, flags | os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    where = _fd_location(fd)
    if where is not None and not any(inside(where, root) for root in roots):
        os.close(fd)
        raise CommandError("PATH_POLICY_DENIED", f"{canonical} is outside the node's allowed roots")
    return fd


def _page(params: dict[str, Any]) -> tuple[int, int]:
    limit = params.get("maxEntries")
    if limit is None:
        limit = LIST_DEFAULT_ENTRIES
    if not isinstance(limit, int) or isinstance(limit, bool) or limit <= 0:
        raise CommandError("INVALID_REQUEST", "maxEntries must be a positive integer")
    token = params.get("pageToken")
    if token is None:
        offset = 0
    elif isinstance(token, str) and token.isdigit():
        offset = int(token)
    else:
        raise CommandError("INVALID_REQUEST", "pageToken must be one a listing returned")
    return min(limit, LIST_MAX_ENTRIES), offset


def _mime(name: str) -> str:
    return mimetypes.guess_type(name, strict=False)[0] or "application/octet-stream"


def _list(params: dict[str, Any], roots: tuple[str, ...]) -> dict[str, Any]:
    try:
        canonical = resolve_in_roots(params.get("path"), roots)
    except PathRefused as err:
        raise _refused(err) from None
    limit, offset = _page(params)
    try:
        fd = _open_inside(canonical, roots, os.O_DIRECTORY)
    except OSError as err:
        if err.errno == errno.ENOTDIR:
            raise CommandError("IS_FILE", "path is not a directory") from None
        raise _fs_error(err, "path") from None
    try:
        with os.scandir(fd) as it:
            names = sorted(entry.name for entry in it)
        entries = []
        for name in names[offset : offset + limit]:
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except OSError:
                continue  # removed while listing
            is_dir = stat.S_ISDIR(st.st_mode)
            is_link = stat.S_ISLNK(st.st_mode)
            entries.append(
                {
                    "name": name,
                    "path": os.path.join(canonical, name),
                    "size": 0 if is_dir else st.st_size,
                    "mimeType": "inode/directory"
                    if is_dir
                    else ("inode/symlink" if is_link else _mime(name)),
                    "isDir": is_dir,
                    "isSymlink": is_link,
                    "mtime": int(st.st_mtime * 1000),
                }
            )
    except OSError as err:
        raise _fs_error(err, "path") from None
    finally:
        os.close(fd)
    truncated = offset + limit < len(names)
    result: dict[str, Any] = {
        "path": canonical,
        "entries": entries,
        "total": len(names),
        "truncated": truncated,
    }
    if truncated:
        result["nextPageToken"] = str(offset + limit)
    return result


def _read(params: dict[str, Any], roots: tuple[str, ...], cap: int) -> dict[str, Any]:
    try:
        canonical = resolve_in_roots(params.get("path"), roots)
    except PathRefused as err:
        raise _refused(err) from None
    offset = params.get("offset", 0)
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise CommandError("INVALID_REQUEST", "offset must be a non-negative integer")
    limit = params.get("maxBytes")
    if limit is None:
        limit = cap
    if not isinstance(limit, int) or isinstance(limit, bool) or limit <= 0:
        raise CommandError("INVALID_REQUEST", "maxBytes must be a positive integer")
    limit = min(limit, cap)
    encoding = params.get("encoding", "utf8")
    if encoding not in ("utf8", "base64"):
        raise CommandError("INVALID_REQUEST", "encoding must be utf8 or base64")
    try:
        # O_NONBLOCK: opening a FIFO must not hang the worker; it is refused just below.
        fd = _open_inside(canonical, roots, os.O_NONBLOCK)
    except OSError as err:
        raise _fs_error(err, "file") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise CommandError("IS_DIRECTORY", "path is a directory")
        if not stat.S_ISREG(st.st_mode):
            raise CommandError("INVALID_PATH", "path is not a regular file")
        data = os.pread(fd, limit, offset)
    except OSError as err:
        raise _fs_error(err, "file") from None
    finally:
        os.close(fd)
    content = (
        data.decode("utf-8", errors="replace")
        if encoding == "utf8"
        else base64.b64encode(data).decode("ascii")
    )
    return {
        "path": canonical,
        "size": st.st_size,
        "offset": offset,
        "bytesRead": len(data),
        "truncated": offset + len(data) < st.st_size,
        "encoding": encoding,
        "mimeType": _mime(canonical),
        "content": content,
    }


async def fs_list(params: dict[str, Any], inv: Invocation) -> Any:
    """``fs.list`` {path, maxEntries?, pageToken?}: one page of a directory, sorted by name."""
    return await asyncio.to_thread(_list, params, inv.settings.fs_roots)


async def fs_read(params: dict[str, Any], inv: Invocation) -> Any:
    """``fs.read`` {path, offset?, maxBytes?, encoding?}: at most the output cap of a file."""
    settings = inv.settings
    return await asyncio.to_thread(_read, params, settings.fs_roots, settings.output_cap_bytes)
