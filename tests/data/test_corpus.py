"""The bundled Bach chorales: complete, split as documented, identical to the developers' copy."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from aurl.data.corpus import bach_dir, bach_files
from aurl.errors import UsageError


def test_all_409_chorales_and_their_documents_are_bundled() -> None:
    files = bach_files()
    assert len(files) == 409 and files == sorted(files)
    for name in ("README.md", "manifest.csv", "split-train.txt", "split-test.txt", "make_bach_chorales.py"):
        assert (bach_dir() / name).is_file(), name
    with (bach_dir() / "manifest.csv").open(newline="", encoding="utf-8") as handle:
        assert sorted(row["file"] for row in csv.DictReader(handle)) == [path.name for path in files]


def test_splits_partition_the_corpus() -> None:
    train, test = bach_files("train"), bach_files("test")
    assert (len(train), len(test)) == (369, 40)
    assert set(train).isdisjoint(test) and sorted(train + test) == bach_files()


def test_unknown_split_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="'valid' is not one of train, test"):
        bach_files("valid")


def test_bundled_files_equal_the_shared_corpus(shared_data: Path) -> None:
    shared = shared_data / "bach-chorales"
    for path in bach_files():
        assert path.read_bytes() == (shared / path.name).read_bytes(), path.name
