import numpy as np
from hypothesis import given, settings

from analyze.music import build
from aurl.analyze.chords import chords_in_segments
from aurl.analyze.key import Key
from aurl.analyze.melody import skyline
from aurl.analyze.meter import bar_starts, beat_starts
from aurl.analyze.report import analyze_score
from aurl.analyze.structure import bar_features, find_phrases, find_sections, lbdm, self_similarity
from strategies import scores

A_BARS = [[60, 62, 64, 65], [67, 65, 64, 62], [60, 64, 67, 72], [71, 67, 62, 59]]
A_BASS = [48, 43, 45, 43]
B_BARS = [[69, 72], [74, 77], [76, 72], [74, 67]]
B_BASS = [41, 38, 36, 43]


def _bars(melodies: list[list[int]], basses: list[int], first_bar: int) -> list[tuple[int, float, float]]:
    notes = []
    for i, (melody, bass) in enumerate(zip(melodies, basses, strict=True)):
        start = (first_bar + i) * 4.0
        step = 4.0 / len(melody)
        notes += [(p, start + j * step, step) for j, p in enumerate(melody)]
        notes.append((bass, start, 4.0))
    return notes


def _form(*parts: tuple[list[list[int]], list[int]]):
    notes, bar = [], 0
    for melodies, basses in parts:
        notes += _bars(melodies, basses, bar)
        bar += len(melodies)
    return build(notes)


def _labels(score) -> list[tuple[str, int, int]]:
    return [
        (s.label, s.start_bar, s.end_bar) for s in find_sections(self_similarity(score, bar_starts(score)))
    ]


def test_a_b_a_is_found() -> None:
    score = _form((A_BARS, A_BASS), (B_BARS, B_BASS), (A_BARS, A_BASS))
    assert _labels(score) == [("A", 0, 4), ("B", 4, 8), ("A", 8, 12)]


def test_a_a_b_and_a_variant() -> None:
    assert _labels(_form((A_BARS, A_BASS), (A_BARS, A_BASS), (B_BARS, B_BASS))) == [
        ("A", 0, 4),
        ("A", 4, 8),
        ("B", 8, 12),
    ]
    varied = [A_BARS[0], A_BARS[1], [60, 64, 67, 74], A_BARS[3]]  # one note of bar 3 changed
    assert _labels(_form((A_BARS, A_BASS), (B_BARS, B_BASS), (varied, A_BASS))) == [
        ("A", 0, 4),
        ("B", 4, 8),
        ("A′", 8, 12),
    ]


def test_music_without_repeats_is_one_section() -> None:
    rng = np.random.default_rng(3)
    notes = [(int(p), i * 0.5, 0.5) for i, p in enumerate(rng.integers(48, 84, 64))]
    assert _labels(build(notes)) == [("A", 0, 8)]


@settings(max_examples=40, deadline=None)
@given(scores(max_notes=40))
def test_self_similarity_is_symmetric_and_bounded(score) -> None:
    matrix = self_similarity(score, bar_starts(score))
    assert np.allclose(matrix, matrix.T)
    assert (matrix >= -1e-9).all() and (matrix <= 1 + 1e-9).all()
    roll, harmony, rhythm = bar_features(score, bar_starts(score))
    has = lambda view: (view != 0).any(axis=1)  # noqa: E731
    assert np.allclose(np.diag(matrix), 0.5 * has(roll) + 0.25 * has(harmony) + 0.25 * has(rhythm))


def test_lbdm_peaks_after_a_long_note_and_at_a_leap() -> None:
    notes = [(60, 0, 1), (62, 1, 1), (64, 2, 1), (65, 3, 3), (72, 6, 1), (71, 7, 1), (69, 8, 1), (67, 9, 1)]
    strength = lbdm(skyline(build(notes)))
    assert strength.shape == (7,)
    assert int(np.argmax(strength)) == 3  # between the long F and the leap up to C
    assert strength.min() >= 0 and strength.max() <= 1.0 + 1e-9


def test_phrases_from_rests_cadences_and_lbdm() -> None:
    # two four-bar phrases: quarter notes ending on a long tonic over C major, a rest, then again
    melody = [64, 62, 60, 62, 64, 64, 64, 62, 62, 64, 62, 62]
    phrase = [(p, i, 1) for i, p in enumerate(melody)] + [(60, 12, 3)]
    notes = phrase + [(p, t + 16, d) for p, t, d in phrase]
    notes += [(48, 0, 15), (48, 16, 15)]
    score = build(notes)
    beats = beat_starts(score)
    beat_chords = chords_in_segments(score, np.concatenate([beats, [score.end_ticks]]))
    phrases = find_phrases(score, skyline(score), beats, beat_chords, Key(0, False))
    assert [(p.start_ticks / 480, p.end_ticks / 480) for p in phrases] == [(0, 16), (16, 31)]
    assert phrases[0].reasons == ("cadence", "lbdm", "rest") and phrases[-1].reasons == ("end",)


def test_analysis_reports_sections_and_phrases_in_beats() -> None:
    result = analyze_score(_form((A_BARS, A_BASS), (B_BARS, B_BASS), (A_BARS, A_BASS)), file="aba.mid")
    assert [(s.label, s.start_beats, s.end_beats) for s in result.sections] == [
        ("A", 0.0, 16.0),
        ("B", 16.0, 32.0),
        ("A", 32.0, 48.0),
    ]
    assert result.phrases[0].start_beats == 0.0 and result.phrases[-1].end_beats == 48.0
    ends = [p.end_beats for p in result.phrases]
    assert ends == sorted(ends)
