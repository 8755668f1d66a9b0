"""The embedded store on disk, apart from the engine: its lock, atomic JSON, store detection,
and damaged files named with the ways back.

One process at a time holds a store directory (an flock on ``DIR/.minilm-qdrant.lock``; users
inside one process are counted); metadata files are written so that a crash leaves the old
file or the new one, never half.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import fcntl
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from minilm_qdrant.errors import StoreCorrupt, StoreInUse

LOCK_FILE = ".minilm-qdrant.lock"
_locks: dict[str, tuple[int, int]] = {}  # realpath -> (fd, users in this process)
_locks_guard = threading.Lock()


def is_client_local_store(path: str | os.PathLike[str]) -> bool:
    """qdrant-client's local mode writes ``DIR/meta.json`` with a ``collections`` map."""
    meta = Path(path) / "meta.json"
    try:
        return isinstance(json.loads(meta.read_text()).get("collections"), dict)
    except (OSError, ValueError, AttributeError):
        return False


def acquire(root: Path) -> str:
    key = os.path.realpath(root)
    with _locks_guard:
        if key in _locks:
            fd, users = _locks[key]
            _locks[key] = (fd, users + 1)
            return key
        fd = os.open(root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreInUse(
                f"The embedded store at {root} is in use by another process; close it there "
                "first (the lock is released when that process ends)."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        _locks[key] = (fd, 1)
        return key


def sole_user(key: str) -> bool:
    """Whether one user in this process holds the store's lock (the caller)."""
    with _locks_guard:
        return key in _locks and _locks[key][1] == 1


def release(key: str) -> None:
    with _locks_guard:
        fd, users = _locks.pop(key)
        if users > 1:
            _locks[key] = (fd, users - 1)
            return
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write JSON so that a crash leaves either the old file or the new one, never half."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def exchange(a: Path, b: Path) -> None:
    """Swap two directories: atomically where the kernel can (``renameat2`` with
    ``RENAME_EXCHANGE``, Linux), else by three renames (the store lock keeps other processes
    out meanwhile)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    at_fdcwd, rename_exchange = -100, 2
    if renameat2 is not None and renameat2(
            at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        _fsync_dir(a.parent)
        return
    parked = a.with_name(f".{a.name}.swap")
    os.rename(a, parked)
    os.rename(b, a)
    os.rename(parked, b)
    _fsync_dir(a.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


WAYS_BACK = (
    "restore the store from a copy, or index the documents again into a new one "
    "(minilm-qdrant index FILE --path NEW_DIR); a collection pushed to a server is intact there "
    "(--url)"
)
_ENGINE_FAULTS = ("Service runtime error", "Service internal error", "IO Error")
"""How Qdrant Edge's messages begin when its files cannot be read (it raises bare Exception)."""


def read_meta(path: Path, required: tuple[str, ...]) -> dict[str, Any] | None:
    """A collection's JSON metadata file, or None when absent; a damaged one raises
    `StoreCorrupt` naming the file and what is wrong with it."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreCorrupt(f"{path} cannot be read ({exc.strerror}): {WAYS_BACK}") from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise StoreCorrupt(f"{path} is not UTF-8 (byte {exc.start}): {WAYS_BACK}") from None
    except json.JSONDecodeError as exc:
        raise StoreCorrupt(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno} col "
                           f"{exc.colno}): {WAYS_BACK}") from None
    missing = [k for k in required if not isinstance(data, dict) or k not in data]
    if missing:
        raise StoreCorrupt(f"{path} lacks {', '.join(missing)} (not a collection's metadata): "
                           f"{WAYS_BACK}")
    return dict(data)


@contextmanager
def engine_faults(shard: Path, doing: str) -> Iterator[None]:
    """Turn Qdrant Edge's failure to read its own files into one `StoreCorrupt` line naming
    the shard and the ways back (other failures pass through as they are)."""
    try:
        yield
    except StoreCorrupt:
        raise
    except Exception as exc:
        message = str(exc).strip()
        if not message.startswith(_ENGINE_FAULTS):
            raise
        detail = message.splitlines()[0][:300]
        raise StoreCorrupt(f"the embedded store's shard {shard} failed while {doing} ({detail}): "
                           f"{WAYS_BACK}") from None
