import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings

from analyze.music import build
from aurl.data.corpus import bach_files
from aurl.evaluate import metrics as m
from aurl.evaluate.features import piece_features
from aurl.midi import read_midi
from aurl.midi.score import Score, TempoMap
from aurl.tokens import encode
from strategies import scores

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "metrics" / "muspy_reference.json"
REFERENCE = json.loads(FIXTURE.read_text())


@pytest.fixture()
def small() -> Score:
    """C-E-G for a beat, C5 for a beat, two beats of rest, D4 for a beat; 4 ticks per beat."""
    return build([(60, 0, 1), (64, 0, 1), (67, 0, 1), (72, 1, 1), (62, 4, 1)], tpq=4)


def test_pitch_metrics_by_hand(small: Score) -> None:
    assert m.pitch_range(small) == 12
    assert m.n_pitches_used(small) == 5
    assert m.n_pitch_classes_used(small) == 4
    assert m.pitch_entropy(small) == pytest.approx(math.log2(5))
    assert m.pitch_class_entropy(small) == pytest.approx(-(0.4 * math.log2(0.4) + 3 * 0.2 * math.log2(0.2)))
    assert m.pitch_in_scale_rate(small, 0, "major") == 1.0
    assert m.pitch_in_scale_rate(small, 6, "minor") == pytest.approx(0.4)  # only D and E are in F# minor
    assert m.scale_consistency(small) == 1.0


def test_time_metrics_by_hand(small: Score) -> None:
    assert m.polyphony(small) == pytest.approx(20 / 12)  # 3 pitches for 4 ticks, 1 for 8 ticks
    assert m.polyphony_rate(small) == pytest.approx(4 / 20)  # more than 2 pitches for 4 of 20 ticks
    assert m.polyphony_rate(small, threshold=0) == pytest.approx(12 / 20)
    assert m.empty_beat_rate(small) == pytest.approx(1 / 6)  # beats 0..5; only beat 3 is empty
    assert m.groove_consistency(small, 16) == pytest.approx(1 - 1 / 16)
    assert m.groove_consistency(small) == m.groove_consistency(small, 16)
    assert m.notes_per_beat(small) == 1.0
    assert m.notes_per_second(small) == pytest.approx(2.0)  # 5 notes in 5 beats at 120 bpm
    slow = small.__class__(**{**small.__dict__, "tempos": TempoMap([0], [60.0])})
    assert m.notes_per_second(slow) == pytest.approx(1.0)
    assert m.mean_ioi_beats(small) == 2.0


def test_histograms_by_hand(small: Score) -> None:
    durations = m.duration_histogram(small)
    assert durations.tolist() == [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]
    intervals = m.interval_histogram(small)  # top voice G4 -> C5 -> D4: +5, -10
    assert intervals[12 + 5] == 0.5 and intervals[12 - 10] == 0.5 and intervals.sum() == 1.0


def test_drum_metrics_by_hand() -> None:
    score = build([(36, t / 12, 0.25) for t in (0, 3, 6, 9, 4)], tpq=12)
    score = score.with_notes(is_drum=np.ones(5, bool))
    assert m.drum_in_pattern_rate(score, "duple") == pytest.approx(0.8)
    assert m.drum_in_pattern_rate(score, "triple") == pytest.approx(0.4)
    assert m.drum_pattern_consistency(score) == pytest.approx(0.8)
    assert math.isnan(m.pitch_entropy(score)) and m.pitch_range(score) == 0
    assert math.isnan(m.drum_pattern_consistency(build([(60, 0, 1)])))


def test_empty_score_gives_nan_not_errors() -> None:
    empty = Score.empty(480)
    assert m.pitch_range(empty) == 0 and m.n_pitches_used(empty) == 0
    for metric in (
        m.polyphony,
        m.polyphony_rate,
        m.empty_beat_rate,
        m.groove_consistency,
        m.scale_consistency,
    ):
        assert math.isnan(metric(empty))


def test_to_resolution_rounds_half_to_even_like_muspy() -> None:
    score = build([(60, 1 / 16, 2 / 16), (62, 3 / 16, 0)], tpq=16)  # onsets 1 and 3 ticks
    grid = m.to_resolution(score, 8)
    assert grid.ticks_per_beat == 8
    assert grid.onset.tolist() == [0, 2]  # 0.5 -> 0, 1.5 -> 2
    assert grid.offset.tolist() == [2, 2]  # 1.5 -> 2, 1.5 -> 2


def test_token_validity_rate(chorale_paths: list[Path]) -> None:
    ids = encode(read_midi(chorale_paths[0]))
    assert m.token_validity_rate(ids) == 1.0
    broken = np.concatenate([ids[:50], ids[:50][::-1], ids[50:]])
    assert 0 < m.token_validity_rate(broken) < 1
    assert math.isnan(m.token_validity_rate([]))


# --- against plain piano-roll implementations of the published definitions -----------------------


def _roll(score: Score) -> np.ndarray:
    roll = np.zeros((score.end_ticks, 128), bool)
    for p, a, b, drum in zip(score.pitch, score.onset, score.offset, score.is_drum, strict=True):
        if not drum:
            roll[a:b, p] = True
    return roll


def _covered_beats(score: Score) -> float:
    n_beats = score.end_ticks // score.ticks_per_beat + 1
    filled = np.zeros(n_beats, bool)
    for a, b in zip(score.onset, score.offset, strict=True):
        filled[a // score.ticks_per_beat : b // score.ticks_per_beat + 1] = True
    return 1 - filled.mean()


@settings(max_examples=80, deadline=None)
@given(scores(max_notes=40))
def test_vectorised_metrics_equal_piano_roll_definitions(score: Score) -> None:
    score = m.to_resolution(score, 4)
    if score.end_ticks < 1:
        return
    roll = _roll(score)
    per_step = roll.sum(axis=1)
    busy = np.count_nonzero(per_step)
    assert np.isclose(m.polyphony(score), roll.sum() / busy) if busy else math.isnan(m.polyphony(score))
    assert np.isclose(m.polyphony_rate(score), np.count_nonzero(per_step > 2) / len(roll))
    assert np.isclose(m.empty_beat_rate(score), _covered_beats(score))
    resolution = 16
    n_measures = score.end_ticks // resolution + 1
    if n_measures >= 2:
        patterns = np.zeros((n_measures, resolution), bool)
        for onset in score.onset:
            patterns[onset // resolution, onset % resolution] = True
        expected = 1 - np.count_nonzero(patterns[1:] != patterns[:-1]) / (resolution * (n_measures - 1))
        assert np.isclose(m.groove_consistency(score, resolution), expected)


# --- against MusPy's own values (tests/data/metrics/README.md) ------------------------------------


def _fixture_path(name: str, shared: Path | None) -> Path | None:
    if name.startswith("bach-chorales/"):
        return next(p for p in bach_files() if p.name == Path(name).name)
    return shared / name if shared is not None and (shared / name).is_file() else None


def _digest(score: Score) -> str:
    """The fixture's fingerprint of which notes a reader found: sorted (onset, pitch, is_drum) rows."""
    rows = sorted(
        zip(score.onset.tolist(), score.pitch.tolist(), score.is_drum.astype(int).tolist(), strict=True)
    )
    return hashlib.sha256(json.dumps([list(r) for r in rows]).encode()).hexdigest()


def _ours(score: Score, measure_resolution: int) -> dict[str, float]:
    return {
        "pitch_range": m.pitch_range(score),
        "n_pitches_used": m.n_pitches_used(score),
        "n_pitch_classes_used": m.n_pitch_classes_used(score),
        "polyphony": m.polyphony(score),
        "polyphony_rate": m.polyphony_rate(score),
        "pitch_in_scale_rate_C_major": m.pitch_in_scale_rate(score, 0, "major"),
        "pitch_in_scale_rate_A_minor": m.pitch_in_scale_rate(score, 9, "minor"),
        "pitch_in_scale_rate_F#_minor": m.pitch_in_scale_rate(score, 6, "minor"),
        "scale_consistency": m.scale_consistency(score),
        "pitch_entropy": m.pitch_entropy(score),
        "pitch_class_entropy": m.pitch_class_entropy(score),
        "empty_beat_rate": m.empty_beat_rate(score),
        "groove_consistency": m.groove_consistency(score, measure_resolution),
        "drum_in_pattern_rate_duple": m.drum_in_pattern_rate(score, "duple"),
        "drum_in_pattern_rate_triple": m.drum_in_pattern_rate(score, "triple"),
        "drum_pattern_consistency": m.drum_pattern_consistency(score),
    }


@pytest.mark.parametrize("entry", REFERENCE["files"], ids=lambda e: Path(e["file"]).name)
def test_metrics_equal_muspy(entry: dict, request: pytest.FixtureRequest) -> None:
    shared = request.getfixturevalue("shared_data") if entry["file"].startswith("real-world/") else None
    path = _fixture_path(entry["file"], shared)
    if path is None:
        pytest.skip(f"{entry['file']} is absent")
    score = read_midi(path)
    assert score.n_notes == entry["n_notes"] and _digest(score) == entry["notes_sha256"], "readers disagree"
    for resolution in ("native", "grid"):
        reference = entry[resolution]
        scaled = score if resolution == "native" else m.to_resolution(score, reference["resolution"])
        assert scaled.ticks_per_beat == reference["resolution"]
        ours = _ours(scaled, reference["measure_resolution"])
        for name, expected in reference["metrics"].items():
            if name == "pitch_range" and expected == -127:  # MusPy's value for drums only; ours is 0
                assert ours[name] == 0
            elif expected is None:
                assert math.isnan(ours[name]), (resolution, name)
            else:
                assert ours[name] == pytest.approx(expected, rel=1e-9, abs=1e-12), (resolution, name)


def test_chorales_groove_on_the_grid_is_informative() -> None:
    """On raw ticks groove_consistency is ~1 for every chorale; on the 32nd-note grid it averages 0.90."""
    paths = bach_files()[::8]
    grid = [piece_features(read_midi(p)).metrics["groove_consistency"] for p in paths]
    assert 0.88 < np.mean(grid) < 0.92 and np.std(grid) > 0.02
    raw = [m.groove_consistency(s) for s in (read_midi(p) for p in paths[:5])]
    assert min(raw) > 0.99
