"""Atomic writes: the old file or the whole new one, never a part, and no temporary file left."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from aurl.atomic import FILE_MODE, atomic_path, write_bytes, write_text


def test_write_bytes_replaces_whole_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "file.bin"
    write_bytes(target, b"old")
    write_bytes(target, b"new contents", durable=False)
    assert target.read_bytes() == b"new contents"
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.bin"]


def test_failed_write_keeps_the_old_file_and_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "file.bin"
    write_bytes(target, b"old")

    def crash(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]


def test_written_files_are_readable_by_others_like_any_file(tmp_path: Path) -> None:
    target = tmp_path / "song.mid"
    write_text(target, "x")
    assert stat.S_IMODE(target.stat().st_mode) == FILE_MODE


def test_an_exception_in_the_block_leaves_the_target_alone(tmp_path: Path) -> None:
    target = tmp_path / "model.safetensors"
    write_bytes(target, b"good")
    with pytest.raises(RuntimeError), atomic_path(target) as temp:
        temp.write_bytes(b"half")
        raise RuntimeError("crash while writing")
    assert target.read_bytes() == b"good"
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]


def test_the_file_mode_does_not_depend_on_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        write_bytes(tmp_path / "a.bin", b"x", durable=False)
        with atomic_path(tmp_path / "b.bin") as temp:
            temp.write_bytes(b"y")
    finally:
        os.umask(old)
    assert {stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()} == {FILE_MODE}


def test_a_large_write_arrives_whole(tmp_path: Path) -> None:
    data = os.urandom(5 << 20)
    write_bytes(tmp_path / "big.bin", data)
    assert (tmp_path / "big.bin").read_bytes() == data
