"""The one rule for writing files on a disk that can fill up: every write of a job's files runs inside `writing`,
which removes the partial file and turns a full disk, however the library reports it, into one DiskFull naming the
file. `write_atomic` is the one write-under-a-temporary-name-then-rename (`write_folder_atomic` for a folder)."""

import contextlib
import errno
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from rerank_lora import faults
from rerank_lora.errors import DiskFull

FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
FULL_WORDS = ("No space left on device", "os error 28", "Disk quota exceeded")
NEARLY_FULL = 64 * 1024  # bytes free below which a failed write is taken as a full disk
PARTIAL = re.compile(r"\.partial(-(\d+))?$")


def says_disk_full(err: BaseException) -> bool:
    """Whether `err` (or what it was raised from) reports a full disk: an OSError's errno, or safetensors' message."""
    chain = [e for e in (err, err.__cause__, err.__context__) if e is not None]
    if any(isinstance(e, OSError) and e.errno in FULL_ERRNOS for e in chain):
        return True
    return any(word in str(e) for e in chain for word in FULL_WORDS)


def is_disk_full(err: BaseException, path: Path) -> bool:
    """Whether `err`, raised while `path` was written, means the disk is full. torch.save's zip writer does not say
    so ("unexpected pos"): then the free space decides."""
    if says_disk_full(err):
        return True
    try:
        return shutil.disk_usage(_existing(Path(path))).free < NEARLY_FULL
    except OSError:
        return False


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def writing(path, partial=None):
    """Write `path` in the block. On any error the `partial` file (or folder) is removed: for a library that writes
    under the final name, that is `path` itself, so no cut-short file looks finished. A full disk is re-raised as
    DiskFull(path), without the library's traceback."""
    try:
        yield
    except BaseException as err:
        full = not isinstance(err, DiskFull) and isinstance(err, Exception) and is_disk_full(err, Path(path))
        if partial is not None:
            _remove(Path(partial))
        if full:
            raise DiskFull(path) from None
        raise


def write_atomic(path, content: str | Callable, fault: str | None = None) -> Path:
    """Write `content` (text, or a function writing to the open handle) under a temporary name, then rename: a file
    with the final name is always complete. `fault` names the fault point between the two (faults.py)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    with writing(path, partial):
        with partial.open("w", encoding="utf-8", newline="") as handle:
            content(handle) if callable(content) else handle.write(content)
        if fault:
            faults.point(fault)
        os.replace(partial, path)
    return path


@contextlib.contextmanager
def write_folder_atomic(path):
    """Fill a folder under a temporary name beside `path` (the block gets that folder), then rename it to `path`:
    a folder with the final name is always complete. On any error the temporary folder is removed (a full disk
    raised as DiskFull(path)). An empty folder at `path` is replaced; a non-empty one (the same folder finished first
    by another process) is kept, and ours removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    _remove(partial)
    with writing(path, partial):
        partial.mkdir()
        yield partial
        try:
            os.replace(partial, path)
        except OSError:
            if not (path.is_dir() and any(path.iterdir())):
                raise
            _remove(partial)


def remove_partials(folder: Path, below: bool = True, only_dead: bool = False) -> list[Path]:
    """Remove the partial files an interrupted write left in `folder` (and `below` it): `*.partial` and
    `.*.partial-<pid>`. All of them where the caller holds the folder's writer lock; else (`only_dead`) those whose
    process is gone."""
    removed = []
    for path in (Path(folder).rglob if below else Path(folder).glob)("*.partial*"):
        match = PARTIAL.search(path.name)
        gone = match is not None and match.group(2) is not None and not alive(int(match.group(2)))
        if match is None or (only_dead and not gone):
            continue
        _remove(path)
        removed.append(path)
    return removed


def alive(pid) -> bool:
    """Whether process `pid` (on this host) runs; a pid that is not a number (a lock file cut short) is not."""
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
