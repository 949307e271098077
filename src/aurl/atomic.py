"""Atomic file writes: a reader sees the old file or the whole new one, never a part of either.

Every file aurl writes for a user (MIDI, weights, checkpoints, caches, reports) goes through here.
The bytes go to a temporary file in the target's folder (a rename is atomic only within one file
system), are fsynced, then renamed over the target; on any failure the temporary file is removed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# mkstemp makes files only their owner can read; what aurl writes is as readable as any other file.
FILE_MODE = 0o644
TEMP_SUFFIX = ".tmp"  # temporary files are hidden: "." + the target's name + random + this


@contextmanager
def atomic_path(
    path: str | os.PathLike[str], *, durable: bool = True, suffix: str = TEMP_SUFFIX
) -> Iterator[Path]:
    """A temporary path beside `path` to write to; renamed over `path` when the block ends cleanly.

    Args:
        path: the file to (re)place; its folder must exist.
        durable: fsync before the rename, so that a crash cannot leave an empty file behind.
        suffix: the temporary file's suffix (some writers choose their format by it).
    """
    path = Path(path)
    fd, name = _create_temp(os.fspath(path), suffix)
    os.close(fd)
    temp = Path(name)
    try:
        yield temp
        os.chmod(temp, FILE_MODE)
        if durable:
            with open(temp, "rb") as handle:
                os.fsync(handle.fileno())
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def write_bytes(path: str | os.PathLike[str], data: bytes, *, durable: bool = True) -> None:
    """Write `data` to `path` atomically.

    The same steps as `atomic_path`, on one file descriptor: create, write, chmod, (fsync,) close,
    rename. Half the system calls of a path-based write, which is most of the cost of a cache
    entry of a few kilobytes.
    """
    fd, temp = _create_temp(os.fspath(path), TEMP_SUFFIX)
    try:
        try:
            write_all(fd, data)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def create_new(path: str | os.PathLike[str], *, append: bool = False) -> int:
    """Create `path`, which must not exist, open for writing (appending if asked); its descriptor.

    O_EXCL makes an existing file an error (FileExistsError) rather than a shared one; the mode is
    FILE_MODE whatever the umask.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | (os.O_APPEND if append else 0)
    fd = os.open(path, flags, FILE_MODE)
    os.fchmod(fd, FILE_MODE)  # the creation mode went through the umask
    return fd


def write_all(fd: int, data: bytes) -> None:
    """Write all of `data` to `fd` (os.write may take only part of it)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _create_temp(path: str, suffix: str) -> tuple[int, str]:
    """A new empty file beside `path`, open for writing: (descriptor, name).

    The name is the target's, hidden, with 48 random bits; a clash (practically never) is an error.
    """
    folder, name = os.path.split(path)
    temp = os.path.join(folder, f".{name}.{secrets.token_hex(6)}{suffix}")
    return create_new(temp), temp


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    write_bytes(path, text.encode("utf-8"))
