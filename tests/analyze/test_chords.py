import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyze.music import TPQ, build, chords
from aurl.analyze.chords import QUALITIES, Chord, chords_in_segments, frequent_patterns, progression
from aurl.analyze.key import Key
from aurl.analyze.report import analyze_score


def _segments(n: int, beats: float = 4.0) -> np.ndarray:
    return (np.arange(n + 1) * beats * TPQ).astype(np.int64)


@pytest.mark.parametrize("quality", [q[0] for q in QUALITIES])
def test_every_quality_at_every_root_in_root_position(quality: str) -> None:
    intervals = next(q[1] for q in QUALITIES if q[0] == quality)
    voicings = [[36 + root] + [60 + root + i for i in intervals] for root in range(12)]
    found = chords_in_segments(build(chords(voicings)), _segments(12))
    assert found == [Chord(root, quality, root) for root in range(12)]


def test_a_progression_by_name_and_roman_numeral() -> None:
    # I - vi - ii7 - V7 - I6 in Eb major, with a passing tone in the last chord
    voicings = [
        [39, 55, 58, 63],
        [48, 60, 63, 67],
        [41, 56, 60, 63, 65],
        [46, 56, 62, 65, 70],
        [43, 58, 63, 67],
    ]
    notes = chords(voicings) + [(65, 16.5, 0.25)]
    score = build(notes)
    key = Key.parse("Eb major")
    found = chords_in_segments(score, _segments(5))
    assert [c.symbol(key) for c in found] == ["Eb", "Cm", "Fm7", "Bb7", "Eb/G"]
    assert [c.roman(key) for c in found] == ["I", "vi", "ii7", "V7", "I"]


def test_minor_key_numerals_and_spellings() -> None:
    key = Key.parse("G minor")
    assert Chord(2, "major", 2).roman(key) == "V" and Chord(2, "major", 6).symbol(key) == "D/F#"
    assert Chord(6, "dim7", 6).roman(key) == "vii°7" and Chord(6, "dim7", 6).symbol(key) == "F#dim7"
    assert Chord(6, "half_dim7", 6).roman(key) == "viiø7"
    assert Chord(5, "major", 5).roman(key) == "VII"
    assert Chord(3, "major", 3).roman(key) == "VI" and Chord(8, "major", 8).roman(key) == "bII"
    assert Chord(9, "dim", 9).roman(key) == "ii°"
    c_major = Key.parse("C major")
    assert Chord(10, "major", 10).roman(c_major) == "bVII" and Chord(8, "aug", 8).roman(c_major) == "bVI+"


def test_incomplete_and_ambiguous_chords() -> None:
    # C-E-Bb without a fifth is still C7; C-E alone over a C bass is C, not Am.
    found = chords_in_segments(build(chords([[48, 64, 70], [48, 64]])), _segments(2))
    assert found == [Chord(0, "dom7", 0), Chord(0, "major", 0)]
    # an augmented triad is named after its bass
    found = chords_in_segments(build(chords([[52, 60, 64, 68]])), _segments(1))
    assert found == [Chord(4, "aug", 4)]


def test_silent_segments_have_no_chord() -> None:
    score = build(chords([[48, 60, 64, 67]], beats=4.0, start=4.0))
    assert chords_in_segments(score, _segments(2)) == [None, Chord(0, "major", 0)]


def test_progression_merges_repeats_and_patterns_count_ngrams() -> None:
    assert progression(["I", "I", None, "V", "V", "I"]) == ["I", "V", "I"]
    sequence = ["I", "IV", "V", "I", "IV", "V", "I", "vi"]
    assert frequent_patterns(sequence) == [
        (("I", "IV", "V", "I"), 2),
        (("I", "IV", "V"), 2),
        (("IV", "V", "I"), 2),
        (("I", "IV"), 2),
        (("IV", "V"), 2),
        (("V", "I"), 2),
    ]
    assert frequent_patterns(sequence, top=2) == frequent_patterns(sequence)[:2]


def test_analysis_lists_beat_and_bar_chords() -> None:
    score = build(chords([[48, 60, 64, 67], [53, 60, 65, 69], [55, 59, 62, 67], [48, 60, 64, 67]]))
    result = analyze_score(score)
    assert result.key == "C major"
    assert [c.symbol for c in result.chords] == ["C", "F", "G", "C"]
    assert [(c.start_beats, c.end_beats) for c in result.chords] == [(0, 4), (4, 8), (8, 12), (12, 16)]
    assert [c.roman for c in result.bar_chords] == ["I", "IV", "V", "I"]
    assert result.progression == ["I", "IV", "V", "I"]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, len(QUALITIES) - 1), st.integers(0, 11), st.integers(0, 3)),
        min_size=1,
        max_size=6,
    ),
    st.integers(-6, 6),
)
def test_transposing_music_transposes_its_chords(progression_spec, shift: int) -> None:
    voicings = []
    for quality_index, root, inversion in progression_spec:
        intervals = QUALITIES[quality_index][1]
        bass = root + intervals[inversion % len(intervals)]
        voicings.append([48 + bass] + [60 + root + i for i in intervals])
    score = build(chords(voicings))
    moved = score.with_notes(pitch=score.pitch + shift)
    found, found_moved = (chords_in_segments(s, _segments(len(voicings))) for s in (score, moved))
    for chord, other in zip(found, found_moved, strict=True):
        assert other == Chord((chord.root + shift) % 12, chord.quality, (chord.bass + shift) % 12)
