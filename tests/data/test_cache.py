"""The token cache: keys, the entry format, atomic writes, the manifest and the reader API."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aurl.atomic import TEMP_SUFFIX
from aurl.data.cache import (
    CacheEntry,
    Manifest,
    RejectedFile,
    TokenCache,
    entry_key,
    pack_entry,
    unpack_entry,
)
from aurl.errors import DataError
from aurl.tokens.vocab import VOCAB_VERSION

token_arrays = st.lists(st.integers(0, 0xFFFF), max_size=300).map(lambda ids: np.array(ids, dtype=np.uint16))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
metadata_dicts = st.dictionaries(st.text(max_size=10), json_values, max_size=5)
KEY = "0123456789abcdef0123456789abcdef"


def test_key_is_32_hex_digits_and_depends_on_bytes_and_options() -> None:
    key = entry_key(b"MThd...", {"sustain_pedal": False})
    assert len(key) == 32 and int(key, 16) >= 0
    assert key == entry_key(b"MThd...", {"sustain_pedal": False})
    assert key != entry_key(b"MThd..,", {"sustain_pedal": False})
    assert key != entry_key(b"MThd...", {"sustain_pedal": True})


@given(tokens=token_arrays, metadata=metadata_dicts)
def test_entry_bytes_round_trip(tokens: np.ndarray, metadata: dict) -> None:
    back, meta = unpack_entry(pack_entry(tokens, metadata))
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, tokens)
    assert meta == metadata


@settings(max_examples=200)
@given(tokens=token_arrays.filter(len), data=st.data())
def test_damaged_entry_bytes_raise_value_error(tokens: np.ndarray, data: st.DataObject) -> None:
    blob = pack_entry(tokens, {"n_tokens": len(tokens)})
    cut = data.draw(st.integers(0, len(blob) - 1), label="truncate at")
    with pytest.raises(ValueError):
        unpack_entry(blob[:cut])
    position = data.draw(st.integers(0, len(blob) - 1), label="flip byte")
    flipped = bytearray(blob)
    flipped[position] ^= 0xFF
    try:
        back, _ = unpack_entry(bytes(flipped))
    except ValueError:
        return
    # A flip in the metadata can leave valid JSON; the tokens are then still intact.
    np.testing.assert_array_equal(back, tokens)


def test_pack_rejects_tokens_that_do_not_fit() -> None:
    with pytest.raises(DataError):
        pack_entry(np.array([70000]), {})
    with pytest.raises(DataError):
        pack_entry(np.zeros((2, 2), np.uint16), {})


def test_entries_are_not_pickles_or_zips(tmp_path: Path) -> None:
    path = TokenCache(tmp_path).store(KEY, np.arange(10, dtype=np.uint16), {"a": 1})
    assert path.read_bytes()[:8] == b"AURLTOK1"
    assert path == tmp_path / "tokens" / KEY[0] / f"{KEY}.tokz"


def test_store_then_load(tmp_path: Path) -> None:
    cache = TokenCache(tmp_path / "cache")
    tokens = np.array([1, 2, 773, 0], dtype=np.uint16)
    cache.store(KEY, tokens, {"n_tokens": 4})
    np.testing.assert_array_equal(cache.load(KEY), tokens)
    assert cache.lookup(KEY) == {"n_tokens": 4}
    assert cache.stored_keys() == [KEY]


def test_an_older_layouts_shard_folders_are_ignored(tmp_path: Path) -> None:
    cache = TokenCache(tmp_path)
    cache.store(KEY, np.arange(3, dtype=np.uint16), {})
    old = tmp_path / "tokens" / "ab" / f"ab{KEY[2:]}.tokz"  # two-digit shards of aurl-token-cache-v1
    old.parent.mkdir()
    old.write_bytes(b"AURLTOK1")
    assert cache.stored_keys() == [KEY]


def test_missing_and_corrupt_entries(tmp_path: Path) -> None:
    cache = TokenCache(tmp_path)
    with pytest.raises(DataError, match="no such cache entry"):
        cache.load(KEY)
    assert cache.lookup(KEY) is None
    path = cache.store(KEY, np.arange(100, dtype=np.uint16), {})
    path.write_bytes(path.read_bytes()[:-5])  # a torn write
    with pytest.raises(DataError, match="corrupt cache entry"):
        cache.load(KEY)
    assert cache.lookup(KEY) is None


@pytest.mark.parametrize("key", ["../../etc/passwd", "ABCDEF0123456789ABCDEF0123456789", "abc", ""])
def test_bad_keys_are_refused(tmp_path: Path, key: str) -> None:
    with pytest.raises(DataError, match="32 lowercase hex digits"):
        TokenCache(tmp_path).load(key)


def test_store_turns_os_errors_into_data_error(tmp_path: Path) -> None:
    blocker = tmp_path / "tokens"
    blocker.write_text("a file where the tokens folder should be")
    with pytest.raises(DataError, match="cannot write cache entry"):
        TokenCache(tmp_path).store(KEY, np.zeros(3, np.uint16), {})


def test_temp_files_are_ignored_and_stale_ones_removed(tmp_path: Path) -> None:
    cache = TokenCache(tmp_path)
    cache.store(KEY, np.zeros(3, np.uint16), {})
    folder = cache.entry_path(KEY).parent
    stale = folder / f".{KEY}.tokz.abc{TEMP_SUFFIX}"
    fresh = folder / f".{KEY}.tokz.def{TEMP_SUFFIX}"
    stale.write_bytes(b"half an entry")
    fresh.write_bytes(b"another run is writing this")
    hour_ago = time.time() - 7200
    os.utime(stale, (hour_ago, hour_ago))
    assert cache.stored_keys() == [KEY]
    assert cache.remove_stale_temp_files() == 1
    assert not stale.exists() and fresh.exists()


def manifest_with(*keys: str) -> Manifest:
    files = [CacheEntry(path=f"piece{i}.mid", key=key, n_tokens=3, n_notes=1) for i, key in enumerate(keys)]
    return Manifest(files=files, rejected=[RejectedFile(path="bad.mid", reason="truncated")])


def test_manifest_round_trip_and_reader_api(tmp_path: Path) -> None:
    cache = TokenCache(tmp_path)
    other = "f" * 32
    cache.write_manifest(manifest_with(KEY, other, KEY))
    assert cache.manifest().rejected == [RejectedFile(path="bad.mid", reason="truncated")]
    assert [entry.path for entry in cache.entries()] == ["piece0.mid", "piece1.mid", "piece2.mid"]
    assert cache.keys() == [KEY, other], "keys are distinct, in entry order"
    assert cache.manifest().vocab_version == VOCAB_VERSION


def test_manifest_problems_are_data_errors(tmp_path: Path) -> None:
    cache = TokenCache(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        cache.entries()
    cache.manifest_path.write_text("{not json", encoding="utf-8")
    with pytest.raises(DataError, match="not a valid manifest"):
        cache.entries()
    cache.write_manifest(manifest_with(KEY).model_copy(update={"vocab_version": "other-v0"}))
    with pytest.raises(DataError, match="other-v0"):
        cache.entries()
    cache.write_manifest(manifest_with(KEY).model_copy(update={"format": "aurl-token-cache-v1"}))
    with pytest.raises(DataError, match="format 'aurl-token-cache-v1'.*aurl preprocess --out"):
        cache.entries()
