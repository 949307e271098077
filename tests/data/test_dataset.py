"""load_training_data on the bundled chorales, MIDI folders and caches; TokenDataset; the fast reader."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings

from aurl.config import DataConfig
from aurl.data import TokenCache, TokenDataset, TrainingData, load_training_data
from aurl.data.cache import Manifest
from aurl.data.corpus import bach_dir
from aurl.data.preprocess import preprocess
from aurl.data.scores import read_score
from aurl.errors import DataError, UsageError
from aurl.midi.score import Score
from aurl.tokens import decode, encode
from strategies import scores


def bundled_data(base: Path) -> TrainingData:
    return load_training_data(DataConfig(cache_dir=base / "aurl-data-cache"), seed=0)


@pytest.fixture(scope="module")
def chorales(tmp_path_factory: pytest.TempPathFactory) -> TrainingData:
    return bundled_data(tmp_path_factory.getbasetemp())


@pytest.fixture()
def five_chorales(chorale_folder: Path) -> Path:
    """A folder with five of the ten fixture chorales."""
    for path in sorted(chorale_folder.glob("*.mid"))[5:]:
        path.unlink()
    return chorale_folder


def split_names(name: str) -> set[str]:
    return set((bach_dir() / name).read_text(encoding="utf-8").split())


def test_bundled_chorales_split_by_their_split_files(chorales: TrainingData) -> None:
    assert (len(chorales.train), len(chorales.val)) == (369, 40)
    assert {Path(name).name for name in chorales.val.names} == split_names("split-test.txt")
    assert {Path(name).name for name in chorales.train.names} == split_names("split-train.txt")
    assert "369 training pieces" in chorales.description and "40 validation pieces" in chorales.description
    assert chorales.train.n_tokens == int(chorales.train.lengths.sum()) > 300_000


def test_bundled_cache_is_built_once(
    tmp_path_factory: pytest.TempPathFactory, chorales: TrainingData
) -> None:
    manifest = chorales.caches[0] / "manifest.json"
    written = manifest.stat().st_mtime_ns
    again = bundled_data(tmp_path_factory.getbasetemp())
    assert manifest.stat().st_mtime_ns == written, "a complete cache is not preprocessed again"
    assert again.val.names == chorales.val.names


def test_dataset_reads_pieces_on_demand(chorales: TrainingData) -> None:
    val = chorales.val
    ids = val[3]
    assert ids.dtype == np.uint16 and ids[0] == 1 and ids[-1] == 2  # BOS ... EOS
    assert val.lengths.dtype == np.int64 and len(ids) == val.lengths[3]
    assert val.score(3) == decode(ids)
    assert val.score(3) is val.score(3), "decoded once, then memoised"
    with pytest.raises(IndexError):
        val[len(val)]
    copy = pickle.loads(pickle.dumps(val))
    assert copy._memo == {} and np.array_equal(copy[3], ids), "a worker's copy starts without the memo"


def test_memo_keeps_a_bounded_number_of_notes(
    chorales: TrainingData, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("aurl.data.dataset.MEMO_NOTES", 1500)
    dataset = TokenDataset(chorales.val.pieces)
    for i in range(10):
        dataset.score(i)
    assert 1 <= len(dataset._memo) < 10
    assert dataset._memo_notes == sum(score.n_notes for score in dataset._memo.values())
    assert 9 in dataset._memo, "the latest piece stays"


def test_read_score_equals_decode_on_the_chorales(chorales: TrainingData) -> None:
    for i in range(len(chorales.val)):
        assert read_score(chorales.val[i]) == decode(chorales.val[i]), chorales.val.names[i]


@settings(max_examples=80, deadline=None)
@given(score=scores())
def test_read_score_equals_decode_on_any_score(score: Score) -> None:
    ids = encode(score)
    assert read_score(ids) == decode(ids)


def test_read_score_hands_odd_sequences_to_decode() -> None:
    ids = np.array([1, 4, 5, 200, 700], np.int64)  # a NoteOn-less tail: not what encode writes
    assert read_score(ids) == decode(ids)


def test_a_midi_folder_without_split_files_gets_a_seeded_hold_out(
    five_chorales: Path, tmp_path: Path
) -> None:
    config = DataConfig(data=five_chorales, cache_dir=tmp_path / "cache", val_fraction=0.1)
    data = load_training_data(config, seed=0)
    assert (len(data.train), len(data.val)) == (4, 1)
    assert set(data.train.names).isdisjoint(data.val.names)
    assert "seeded hold-out of 1 of 5 pieces" in data.description
    assert load_training_data(config, seed=0).val.names == data.val.names
    held = {load_training_data(config, seed=seed).val.names[0] for seed in range(8)}
    assert len(held) > 1, "the seed chooses the held-out piece"
    nothing_held = load_training_data(config.model_copy(update={"val_fraction": 0.0}), seed=0)
    assert (len(nothing_held.train), len(nothing_held.val)) == (5, 0)


def test_a_split_file_in_the_folder_decides_the_split(five_chorales: Path, tmp_path: Path) -> None:
    names = sorted(path.name for path in five_chorales.glob("*.mid"))
    (five_chorales / "split-test.txt").write_text(f"{names[1]}\n{names[3]}\n", encoding="utf-8")
    data = load_training_data(DataConfig(data=five_chorales, cache_dir=tmp_path / "cache"), seed=0)
    assert sorted(Path(name).name for name in data.val.names) == [names[1], names[3]]
    assert len(data.train) == 3 and "split-test.txt" in data.description


def test_a_cache_folder_is_read_as_it_is(five_chorales: Path, tmp_path: Path) -> None:
    cache = tmp_path / "prepared"
    preprocess([five_chorales], cache, workers=1)
    shutil.rmtree(five_chorales)  # the cache alone must do
    data = load_training_data(DataConfig(data=[cache], cache_dir=tmp_path / "unused"), seed=3)
    assert len(data.train) + len(data.val) == 5
    assert data.caches == (cache,)
    assert not (tmp_path / "unused").exists(), "nothing is preprocessed for a ready cache"


def test_identical_files_are_kept_once(five_chorales: Path, tmp_path: Path) -> None:
    first = sorted(five_chorales.glob("*.mid"))[0]
    shutil.copyfile(first, five_chorales / "copy-of-first.mid")
    data = load_training_data(
        DataConfig(data=five_chorales, cache_dir=tmp_path / "c", val_fraction=0.4), seed=1
    )
    assert len(data.train) + len(data.val) == 5
    keys = [piece.key for piece in data.train.pieces + data.val.pieces]
    assert len(keys) == len(set(keys))


def test_a_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"data path '.*no-such-folder' does not exist"):
        load_training_data(DataConfig(data=tmp_path / "no-such-folder", cache_dir=tmp_path), seed=0)


def test_a_folder_without_midi_is_a_data_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("no music")
    with pytest.raises(DataError, match="no MIDI files"):
        load_training_data(DataConfig(data=tmp_path, cache_dir=tmp_path / "cache"), seed=0)


def test_an_empty_cache_is_a_data_error(tmp_path: Path) -> None:
    TokenCache(tmp_path / "empty").write_manifest(Manifest())
    with pytest.raises(DataError, match="holds no pieces"):
        load_training_data(DataConfig(data=tmp_path / "empty", cache_dir=tmp_path), seed=0)


def test_unreadable_midi_only_is_a_data_error(tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "broken.mid").write_bytes(b"not a midi file")
    with pytest.raises(DataError, match=r"none of the 1 MIDI files .* could be read"):
        load_training_data(DataConfig(data=folder, cache_dir=tmp_path / "cache"), seed=0)
