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
    decode_entry,
    encode_entry,
    entry_key,
    scan_pack,
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
    key, back, meta = decode_entry(encode_entry(KEY, tokens, metadata))
    assert key == KEY and back.dtype == np.uint16
    np.testing.assert_array_equal(back, tokens)
    assert meta == metadata


@settings(max_examples=200)
@given(tokens=token_arrays.filter(len), metadata=metadata_dicts, data=st.data())
def test_any_damage_to_an_entry_raises_value_error(
    tokens: np.ndarray, metadata: dict, data: st.DataObject
) -> None:
    blob = encode_entry(KEY, tokens, metadata)
    cut = data.draw(st.integers(0, len(blob) - 1), label="truncate at")
    with pytest.raises(ValueError):
        decode_entry(blob[:cut])
    position = data.draw(st.integers(0, len(blob) - 1), label="flip byte")
    flipped = bytearray(blob)
    flipped[position] ^= data.draw(st.integers(1, 255), label="bits")
    with pytest.raises(ValueError):  # the CRC covers key, lengths and metadata too
        decode_entry(bytes(flipped))


def test_encode_rejects_tokens_that_do_not_fit_and_bad_keys() -> None:
    with pytest.raises(DataError):
        encode_entry(KEY, np.array([70000]), {})
    with pytest.raises(DataError):
        encode_entry(KEY, np.zeros((2, 2), np.uint16), {})
    with pytest.raises(DataError, match="32 lowercase hex digits"):
        encode_entry("abc", np.zeros(2, np.uint16), {})


def packs(root: Path) -> list[Path]:
    return sorted((root / "packs").glob("*.pack"))


def test_entries_are_appended_to_one_pack_per_writer(tmp_path: Path) -> None:
    other = "f" * 32
    with TokenCache(tmp_path) as cache:
        cache.store(KEY, np.arange(10, dtype=np.uint16), {"a": 1})
        cache.store(other, np.arange(5, dtype=np.uint16), {"b": 2})
    [pack] = packs(tmp_path)
    blob = pack.read_bytes()
    assert blob[:8] == b"AURLTOK3", "entries are not pickles or zips"
    assert [key for key, _ in scan_pack(pack)] == [KEY, other]
    assert pack.stat().st_mode & 0o777 == 0o644
    with TokenCache(tmp_path) as second:  # a second writer (another run, another worker) gets its own
        second.store(other, np.arange(7, dtype=np.uint16), {})
    assert len(packs(tmp_path)) == 2


def test_store_then_load_in_the_same_and_a_fresh_object(tmp_path: Path) -> None:
    cache = TokenCache(tmp_path / "cache")
    tokens = np.array([1, 2, 773, 0], dtype=np.uint16)
    cache.store(KEY, tokens, {"n_tokens": 4})
    np.testing.assert_array_equal(cache.load(KEY), tokens)
    assert cache.lookup(KEY) == {"n_tokens": 4}
    cache.close()
    fresh = TokenCache(tmp_path / "cache")
    np.testing.assert_array_equal(fresh.load(KEY), tokens)
    assert fresh.stored_keys() == [KEY]


def test_read_finds_an_entry_written_by_another_process_after_the_index_lookup_does_not(
    tmp_path: Path,
) -> None:
    reader = TokenCache(tmp_path)
    assert reader.lookup(KEY) is None  # builds an empty index
    with TokenCache(tmp_path) as writer:
        writer.store(KEY, np.arange(3, dtype=np.uint16), {"x": 1})
    assert reader.lookup(KEY) is None, "a miss while filling the cache does not walk the packs again"
    assert reader.read(KEY)[1] == {"x": 1}
    assert reader.lookup(KEY) == {"x": 1}


def test_an_older_layouts_folders_are_ignored(tmp_path: Path) -> None:
    with TokenCache(tmp_path) as cache:
        cache.store(KEY, np.arange(3, dtype=np.uint16), {})
    old = tmp_path / "tokens" / "a" / f"a{KEY[1:]}.tokz"  # an entry file of aurl-token-cache-v2
    old.parent.mkdir(parents=True)
    old.write_bytes(b"AURLTOK1")
    assert TokenCache(tmp_path).stored_keys() == [KEY]


def test_missing_and_damaged_entries(tmp_path: Path) -> None:
    cache = TokenCache(tmp_path)
    with pytest.raises(DataError, match="no such cache entry"):
        cache.load(KEY)
    assert cache.lookup(KEY) is None
    cache.store(KEY, np.arange(100, dtype=np.uint16), {})
    cache.close()
    [pack] = packs(tmp_path)
    blob = bytearray(pack.read_bytes())
    blob[-5] ^= 0xFF  # a damaged byte in the token stream
    pack.write_bytes(bytes(blob))
    with pytest.raises(DataError, match="damaged cache entry"):
        cache.load(KEY)
    assert cache.lookup(KEY) is None


def test_a_torn_last_entry_hides_only_itself(tmp_path: Path) -> None:
    """What a writer killed mid-entry leaves: every finished entry is found, the torn one is not."""
    keys = [f"{i:032x}" for i in range(3)]
    with TokenCache(tmp_path) as cache:
        for i, key in enumerate(keys):
            cache.store(key, np.full(50 + i, i, np.uint16), {"i": i})
    [pack] = packs(tmp_path)
    blob = pack.read_bytes()
    last = dict(scan_pack(pack))[keys[2]]
    for cut in (last + 3, last + 40, len(blob) - 1):
        pack.write_bytes(blob[:cut])
        fresh = TokenCache(tmp_path)
        assert fresh.stored_keys() == keys[:2]
        assert [fresh.lookup(key) for key in keys] == [{"i": 0}, {"i": 1}, None]


def test_a_later_entry_of_a_key_wins(tmp_path: Path) -> None:
    with TokenCache(tmp_path) as cache:
        cache.store(KEY, np.zeros(3, np.uint16), {"v": 1})
        cache.store(KEY, np.ones(3, np.uint16), {"v": 2})
        assert cache.lookup(KEY) == {"v": 2}
    assert TokenCache(tmp_path).lookup(KEY) == {"v": 2}


@pytest.mark.parametrize("key", ["../../etc/passwd", "ABCDEF0123456789ABCDEF0123456789", "abc", ""])
def test_bad_keys_are_refused(tmp_path: Path, key: str) -> None:
    with pytest.raises(DataError, match="32 lowercase hex digits"):
        TokenCache(tmp_path).load(key)


def test_store_turns_os_errors_into_data_error(tmp_path: Path) -> None:
    blocker = tmp_path / "packs"
    blocker.write_text("a file where the packs folder should be")
    with pytest.raises(DataError, match="cannot write a cache entry"):
        TokenCache(tmp_path).store(KEY, np.zeros(3, np.uint16), {})


def test_a_failed_write_cuts_the_pack_back_and_the_next_entry_goes_to_a_new_pack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = TokenCache(tmp_path)
    cache.store(KEY, np.zeros(3, np.uint16), {})
    real_write = os.write

    def disk_full_after_ten_bytes(fd: int, data: bytes) -> int:
        real_write(fd, bytes(data)[:10])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", disk_full_after_ten_bytes)
    with pytest.raises(DataError, match="No space left on device"):
        cache.store("f" * 32, np.zeros(3, np.uint16), {})
    monkeypatch.undo()
    [pack] = packs(tmp_path)
    assert [key for key, _ in scan_pack(pack)] == [KEY] and len(list(pack.parent.iterdir())) == 1
    cache.store("e" * 32, np.zeros(3, np.uint16), {})
    cache.close()
    assert len(packs(tmp_path)) == 2
    assert TokenCache(tmp_path).stored_keys() == [KEY, "e" * 32]


def test_stale_temporary_manifests_are_removed(tmp_path: Path) -> None:
    cache = TokenCache(tmp_path)
    stale = tmp_path / f".manifest.json.abc{TEMP_SUFFIX}"
    fresh = tmp_path / f".manifest.json.def{TEMP_SUFFIX}"
    stale.write_bytes(b"half a manifest")
    fresh.write_bytes(b"another run is writing this")
    hour_ago = time.time() - 7200
    os.utime(stale, (hour_ago, hour_ago))
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


@settings(max_examples=150, deadline=None)
@given(
    entries=st.lists(st.tuples(st.integers(0, 2**128 - 1), token_arrays), max_size=4),
    garbage=st.binary(max_size=200),
    flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), max_size=3),
)
def test_any_pack_bytes_give_entries_or_data_errors(
    tmp_path_factory: pytest.TempPathFactory, entries: list, garbage: bytes, flips: list
) -> None:
    """A pack damaged anyhow (flipped bytes, junk at the end) never crashes or hangs a reader."""
    root = tmp_path_factory.mktemp("cache")
    blob = bytearray(b"".join(encode_entry(f"{key:032x}", tokens, {}) for key, tokens in entries) + garbage)
    for position, bits in flips:
        if blob:
            blob[position % len(blob)] ^= bits
    (root / "packs").mkdir()
    (root / "packs" / "damaged.pack").write_bytes(bytes(blob))
    cache = TokenCache(root)
    for key in cache.stored_keys():
        try:
            tokens, _ = cache.read(key)
        except DataError:
            assert cache.lookup(key) is None
        else:
            assert tokens.dtype == np.uint16
    if not flips and not garbage:
        assert cache.stored_keys() == sorted({f"{key:032x}" for key, _ in entries})


def test_a_length_damaged_after_indexing_is_a_data_error_not_a_huge_read(tmp_path: Path) -> None:
    with TokenCache(tmp_path) as cache:
        cache.store(KEY, np.arange(100, dtype=np.uint16), {})
        assert cache.lookup(KEY) == {}  # indexed while whole
        [pack] = packs(tmp_path)
        blob = bytearray(pack.read_bytes())
        blob[32:36] = b"\xff\xff\xff\x7f"  # the token stream's length field: 2 GB
        pack.write_bytes(bytes(blob))
        with pytest.raises(DataError, match="ends inside the entry"):
            cache.read(KEY)
