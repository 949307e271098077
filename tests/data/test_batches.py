"""Batches: deterministic plans, shards that add up, bucketing, crops at bar lines, augmented rows, loader."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from aurl.config import DataConfig
from aurl.data import Batches, TokenCache, TokenDataset, TrainingData, load_training_data
from aurl.data.batches import crop, window_start
from aurl.data.scores import read_score, token_steps, window_notes
from aurl.data.sources import Piece
from aurl.errors import ConfigError
from aurl.midi.score import Score, TempoMap, TimeSignatureMap
from aurl.tokens import encode, is_valid, vocab
from strategies import scores

ALL_AUGMENTATIONS = {
    "transpose_prob": 1.0,
    "tempo_prob": 1.0,
    "velocity_prob": 1.0,
    "instrument_prob": 1.0,
    "jitter_prob": 1.0,
    "swing_prob": 1.0,
}


@pytest.fixture(scope="module")
def chorales(tmp_path_factory: pytest.TempPathFactory) -> TrainingData:
    base = tmp_path_factory.getbasetemp() / "aurl-data-cache"
    return load_training_data(DataConfig(cache_dir=base), seed=0)


def starts_at_a_bar_or_bos(row: np.ndarray) -> bool:
    return int(row[0]) in (vocab.BOS, vocab.BAR)


def test_same_position_same_batch_other_epoch_other_batch(chorales: TrainingData) -> None:
    config = DataConfig(batch_size=8)
    one = Batches(chorales.train, config, seed=5, augment=True)
    other = Batches(chorales.train, config, seed=5, augment=True)  # no state shared with `one`
    first = one.batch(2, 7, 512)
    assert first["ids"].dtype == torch.int64 and first["mask"].dtype == torch.bool
    for name in ("ids", "mask"):
        assert torch.equal(first[name], one.batch(2, 7, 512)[name])
        assert torch.equal(first[name], other.batch(2, 7, 512)[name])
    assert not torch.equal(first["ids"], one.batch(3, 7, 512)["ids"])
    assert not torch.equal(
        first["ids"], Batches(chorales.train, config, seed=6, augment=True).batch(2, 7, 512)["ids"]
    )


@pytest.mark.parametrize("augment", [True, False])
def test_the_shards_of_two_ranks_make_the_one_rank_batch(chorales: TrainingData, augment: bool) -> None:
    config = DataConfig(batch_size=6, seq_len=1024)
    whole = Batches(chorales.train, config, seed=1, augment=augment)
    ranks = [
        Batches(chorales.train, config, seed=1, augment=augment, rank=rank, world_size=2) for rank in (0, 1)
    ]
    for index in (0, 13, whole.num_batches(4) - 1):
        shards = [rank.batch(4, index, 1024) for rank in ranks]
        assert all(shard["ids"].shape[0] == 3 for shard in shards)
        for name in ("ids", "mask"):
            assert torch.equal(
                torch.cat([shard[name] for shard in shards]), whole.batch(4, index, 1024)[name]
            )


def test_world_size_must_divide_the_batch(chorales: TrainingData) -> None:
    with pytest.raises(ConfigError, match="batch_size 10 is not a multiple of the world size 4"):
        Batches(chorales.train, DataConfig(batch_size=10), seed=0, augment=False, world_size=4)
    with pytest.raises(ConfigError, match="rank 2 is outside"):
        Batches(chorales.train, DataConfig(batch_size=4), seed=0, augment=False, rank=2, world_size=2)


def test_every_piece_once_per_epoch_and_a_filled_last_batch(chorales: TrainingData) -> None:
    batches = Batches(chorales.val, DataConfig(batch_size=16), seed=0, augment=False)
    assert batches.num_batches(0) == 3  # 40 pieces
    plan = batches.plan(0)
    assert plan.shape == (3, 16)
    assert set(plan.ravel().tolist()) == set(range(40))
    assert np.bincount(plan.ravel(), minlength=40).max() <= 2, "only the fill-up repeats pieces"
    assert not np.array_equal(plan, batches.plan(1)), "the plan is shuffled per epoch"


def test_rows_are_the_pieces_cropped_at_bar_lines_and_padded(chorales: TrainingData) -> None:
    config = DataConfig(batch_size=16, pad_multiple=64)
    batches = Batches(chorales.val, config, seed=0, augment=False)
    for index in range(batches.num_batches(0)):
        for seq_len in (300, 4096):
            ids, mask = batches.arrays(0, index, seq_len)
            width = ids.shape[1]
            assert width <= seq_len and (width == seq_len or width % 64 == 0)
            assert not ids[~mask].any(), "padding is PAD (0)"
            lengths = mask.sum(1)
            assert np.array_equal(mask, np.arange(width) < lengths[:, None]), "padding on the right"
            for row, piece in enumerate(batches.plan(0)[index]):
                tokens = chorales.val[int(piece)]
                got = ids[row, : lengths[row]]
                assert starts_at_a_bar_or_bos(got)
                if len(tokens) <= width:
                    assert np.array_equal(got, tokens), "a piece that fits is not cropped"
                else:
                    starts = [0, *np.flatnonzero(tokens == vocab.BAR).tolist()]
                    assert len(got) == width
                    assert any(np.array_equal(tokens[start : start + width], got) for start in starts)


def test_every_augmented_row_that_fits_is_a_valid_piece(chorales: TrainingData) -> None:
    config = DataConfig(batch_size=8, seq_len=4096, **ALL_AUGMENTATIONS)
    batches = Batches(TokenDataset(chorales.val.pieces[:24]), config, seed=2, augment=True)
    whole = changed = 0
    for index in range(batches.num_batches(0)):
        ids, mask = batches.arrays(0, index, 4096)
        for row, piece in enumerate(batches.plan(0)[index]):
            tokens = ids[row, mask[row]]
            pitches = tokens[vocab.NOTE_ON.contains(tokens)] - vocab.NOTE_ON.start
            assert pitches.min() >= 0 and pitches.max() <= 127
            changed += not np.array_equal(tokens, chorales.val[int(piece)][: len(tokens)])
            if len(tokens) < ids.shape[1]:  # not cropped: a whole piece
                assert is_valid(tokens), f"batch {index} row {row}"
                whole += 1
            else:  # one of the val chorales is 16,475 tokens long
                assert starts_at_a_bar_or_bos(tokens)
    assert whole >= 20 and changed == 24


def test_bucketing_cuts_padding_on_the_chorales(chorales: TrainingData) -> None:
    padding = {}
    for bucket in (True, False):
        batches = Batches(chorales.train, DataConfig(bucket=bucket), seed=0, augment=False)
        pad = total = 0
        for index in range(batches.num_batches(0)):
            _, mask = batches.arrays(0, index, 2048)
            pad, total = pad + (~mask).sum(), total + mask.size
        padding[bucket] = pad / total
    # measured: 4.9% with bucketing, 38% without (batches of 16 at 2048 tokens)
    assert padding[True] < 0.1 < 0.3 < padding[False]


def test_width_leaves_room_for_jitter_only_when_it_is_on(chorales: TrainingData) -> None:
    pieces = np.array([0, 1])
    longest = int(chorales.train.lengths[pieces].max())
    plain = Batches(chorales.train, DataConfig(pad_multiple=1), seed=0, augment=False)
    jitter = Batches(chorales.train, DataConfig(pad_multiple=1, jitter_note_prob=1.0), seed=0, augment=True)
    assert plain.width(pieces, 10_000) == longest
    assert jitter.width(pieces, 10_000) > longest * 1.2
    assert jitter.width(pieces, 100) == 100


def test_crop_starts_at_bos_or_a_bar_line_leaving_a_full_window() -> None:
    ids = np.array([1, 4, 5, 6, 9, 4, 9, 9, 4, 9, 4, 9, 2])
    starts = {window_start(ids, 4, np.random.default_rng(seed)) for seed in range(200)}
    assert starts == {0, 5, 8}, "bar 1 belongs to the header; the bar at 10 leaves only 3 tokens"
    assert len(crop(ids, 4, np.random.default_rng(0))) == 4
    assert np.array_equal(crop(ids, 20, np.random.default_rng(0)), ids)


def long_piece(chorale: Score, repeats: int) -> Score:
    """A chorale played `repeats` times in a row, with a tempo and a metre change each time."""
    span = -(-chorale.end_ticks // (4 * chorale.ticks_per_beat)) * 4 * chorale.ticks_per_beat
    shifts = np.repeat(np.arange(repeats) * span, chorale.n_notes)
    columns = {name: np.tile(column, repeats) for name, column in chorale.notes().items()}
    columns["onset"] = columns["onset"] + shifts
    columns["track"] = (columns["track"] + np.repeat(np.arange(repeats) % 2, chorale.n_notes)) % 32
    starts = np.arange(repeats) * span
    return Score.from_notes(
        chorale.ticks_per_beat,
        columns,
        tempos=TempoMap(starts, 60.0 + 10 * (np.arange(repeats) % 3)),
        time_signatures=TimeSignatureMap(starts, np.where(np.arange(repeats) % 2, 3, 4), np.full(repeats, 4)),
    )


@pytest.fixture(scope="module")
def long_dataset(chorales: TrainingData, tmp_path_factory: pytest.TempPathFactory) -> TokenDataset:
    cache = TokenCache(tmp_path_factory.mktemp("long"))
    pieces = []
    for i, repeats in enumerate((12, 20, 30)):
        ids = encode(long_piece(chorales.val.score(i), repeats))
        key = f"{i:032x}"
        cache.store(key, ids, {})
        pieces.append(Piece(f"long-{i}", cache.root, key, len(ids)))
    return TokenDataset(pieces)


def test_window_notes_encode_like_the_whole_piece(long_dataset: TokenDataset) -> None:
    rng = np.random.default_rng(0)
    for i in range(len(long_dataset)):
        ids = long_dataset[i]
        steps = token_steps(ids)
        bars = np.flatnonzero(ids == vocab.BAR)[1:]
        for start in rng.choice(bars, 6):
            later = bars[bars > start + 300]
            stop = int(steps[later[0]]) if len(later) else None
            window = encode(window_notes(long_dataset.score(i), int(steps[start]), stop))
            first = np.flatnonzero((window == vocab.BAR) & (token_steps(window) == steps[start]))[0]
            end = len(ids) if stop is None else int(np.searchsorted(steps, stop))
            assert np.array_equal(window[first : first + end - start], ids[start:end])


@settings(max_examples=40, deadline=None)
@given(score=scores(max_notes=50, max_tracks=6), data=st.data())
def test_window_notes_encode_like_the_whole_piece_for_any_score(score: Score, data: st.DataObject) -> None:
    ids = encode(score)
    bars = np.flatnonzero(ids == vocab.BAR)
    steps = token_steps(ids)
    start = data.draw(st.sampled_from(bars.tolist()))
    stop_bar = data.draw(st.sampled_from([None, *bars[bars > start].tolist()]))
    stop = None if stop_bar is None else int(steps[stop_bar])
    window = encode(window_notes(read_score(ids), int(steps[start]), stop))
    first = np.flatnonzero((window == vocab.BAR) & (token_steps(window) == steps[start]))[0]
    end = len(ids) if stop is None else int(np.searchsorted(steps, stop))
    assert np.array_equal(window[first : first + end - start], ids[start:end])


def test_long_pieces_are_augmented_around_their_window(long_dataset: TokenDataset) -> None:
    assert long_dataset.lengths.min() > 2 * 512
    config = DataConfig(batch_size=3, **ALL_AUGMENTATIONS, transpose_semitones=12)
    batches = Batches(long_dataset, config, seed=0, augment=True)
    ids, mask = batches.arrays(0, 0, 512)
    assert ids.shape == (3, 512) and mask.all()
    assert all(starts_at_a_bar_or_bos(row) for row in ids)
    again, _ = Batches(long_dataset, config, seed=0, augment=True).arrays(0, 0, 512)
    assert np.array_equal(ids, again)
    plain, _ = Batches(long_dataset, config, seed=0, augment=False).arrays(0, 0, 512)
    assert not np.array_equal(ids, plain)
    switched_off = config.model_copy(update={"augment": False})
    assert np.array_equal(
        Batches(long_dataset, switched_off, seed=0, augment=True).arrays(0, 0, 512)[0], plain
    )


def test_loader_yields_the_batches_from_start_for_any_worker_count(chorales: TrainingData) -> None:
    config = DataConfig(batch_size=16)
    batches = Batches(chorales.val, config, seed=4, augment=True)
    in_process = list(batches.loader(1, 1, 256, num_workers=0, pin_memory=False))
    assert [index for index, _ in in_process] == [1, 2]
    workers = list(batches.loader(1, 1, 256, num_workers=2, pin_memory=False))
    assert [index for index, _ in workers] == [1, 2]
    for (index, batch), (_, other) in zip(in_process, workers, strict=True):
        expected = batches.batch(1, index, 256)
        assert torch.equal(batch["ids"], expected["ids"]) and torch.equal(other["ids"], expected["ids"])
        assert torch.equal(batch["mask"], other["mask"])
    assert list(batches.loader(1, 3, 256, num_workers=0, pin_memory=False)) == []


def test_an_empty_dataset_has_no_batches() -> None:
    batches = Batches(TokenDataset([]), DataConfig(), seed=0, augment=False)
    assert batches.num_batches(0) == 0
    with pytest.raises(IndexError):
        batches.batch(0, 0, 64)


def test_batch_timing_is_far_below_a_training_step(chorales: TrainingData) -> None:
    import time

    batches = Batches(chorales.train, DataConfig(batch_size=16), seed=0, augment=True)
    batches.batch(0, 0, 512)  # imports torch's tensor path
    started = time.perf_counter()
    for index in range(1, 6):
        batches.batch(0, index, 512)
    per_batch = (time.perf_counter() - started) / 5
    assert per_batch < 0.25, f"{per_batch * 1e3:.0f} ms per batch of 16 x 512 with augmentation"
