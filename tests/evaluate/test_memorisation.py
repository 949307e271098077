import math

import numpy as np
import pytest

from aurl.analyze.meter import bar_starts
from aurl.data.corpus import bach_files
from aurl.evaluate.memorisation import MemorisationIndex, memorisation, window_fingerprints
from aurl.midi import read_midi
from aurl.midi.score import Score


@pytest.fixture(scope="module")
def chorales() -> list[Score]:
    paths = [p for p in bach_files() if p.name in ("bwv1.6.mid", "bwv10.7.mid", "bwv26.6.mid", "bwv40.6.mid")]
    return [read_midi(p) for p in paths]


def _random_piece(rng: np.random.Generator, tpq: int, bars: int) -> dict[str, np.ndarray]:
    n = bars * 8
    return {
        "pitch": rng.integers(40, 90, n),
        "onset": np.sort(rng.integers(0, bars * 4, n)) * tpq,
        "duration": np.full(n, tpq),
    }


def _with_copy(
    source: Score, rng: np.random.Generator, first_bar: int, n_bars: int, at_bar: int, transpose: int
) -> Score:
    """A 16-bar random piece with bars first_bar.. of `source` pasted, transposed, at bar `at_bar`."""
    tpq = source.ticks_per_beat
    bars = bar_starts(source)
    inside = (source.onset >= bars[first_bar]) & (source.onset < bars[first_bar + n_bars])
    filler = _random_piece(rng, tpq, 16)
    bar_ticks = 4 * tpq
    keep = (filler["onset"] < at_bar * bar_ticks) | (filler["onset"] >= (at_bar + n_bars) * bar_ticks)
    notes = {
        "pitch": np.concatenate([filler["pitch"][keep], source.pitch[inside] + transpose]),
        "onset": np.concatenate(
            [filler["onset"][keep], source.onset[inside] - bars[first_bar] + at_bar * bar_ticks]
        ),
        "duration": np.concatenate([filler["duration"][keep], source.duration[inside]]),
    }
    return Score.from_notes(tpq, notes)


def test_a_transposed_copy_is_found(chorales: list[Score]) -> None:
    index = MemorisationIndex.build(chorales, ["a", "b", "c", "d"])
    piece = _with_copy(chorales[1], np.random.default_rng(1), first_bar=4, n_bars=8, at_bar=4, transpose=3)
    found = memorisation(piece, index)
    assert found.n_windows == 13
    assert found.copied_share == pytest.approx(5 / 13)  # the five windows inside the copy
    assert found.longest_span_bars == 8 and found.longest_span_source == "b"


def test_shuffled_music_copies_nothing(chorales: list[Score]) -> None:
    index = MemorisationIndex.build(chorales)
    rng = np.random.default_rng(2)
    for score in chorales:
        shuffled = score.with_notes(pitch=rng.permutation(score.pitch))
        found = memorisation(shuffled, index)
        assert found.n_windows > 0 and found.copied_share == 0.0
        assert found.longest_span_bars == 0 and found.longest_span_source is None
    random = Score.from_notes(480, _random_piece(rng, 480, 16))
    assert memorisation(random, index).copied_share == 0.0


def test_a_piece_against_itself_is_all_copied(chorales: list[Score]) -> None:
    score = chorales[0]
    found = memorisation(score, MemorisationIndex.build([score], ["self"]))
    n_bars = len(bar_starts(score))
    assert found.copied_share == 1.0 and found.longest_span_bars == n_bars


def test_fingerprints_ignore_transposition_tracks_and_velocity(chorales: list[Score]) -> None:
    score = chorales[2]
    moved = score.with_notes(
        pitch=score.pitch - 5,
        track=np.zeros(score.n_notes, np.int16),
        velocity=np.full(score.n_notes, 100, np.int16),
    )
    assert np.array_equal(window_fingerprints(score), window_fingerprints(moved))
    shifted = score.with_notes(onset=score.onset + score.ticks_per_beat // 2)
    assert not np.array_equal(window_fingerprints(score), window_fingerprints(shifted))


def test_too_short_or_sparse_pieces_have_no_windows() -> None:
    short = Score.from_notes(
        480, {"pitch": np.array([60, 62]), "onset": np.array([0, 480]), "duration": np.array([480, 480])}
    )
    index = MemorisationIndex.build([short])
    assert len(index.fingerprints) == 0
    found = memorisation(short, index)
    assert found.n_windows == 0 and math.isnan(found.copied_share)
