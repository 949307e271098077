import numpy as np
from hypothesis import given, settings

from analyze.music import build
from aurl.analyze.melody import find_motifs, interval_histogram, parsons_code, skyline
from strategies import scores


def test_skyline_takes_the_top_voice_and_cuts_it_at_the_next_melody_note() -> None:
    notes = [(72, 0, 2), (60, 0, 4), (64, 0, 1), (74, 2, 1), (62, 2, 1), (76, 3, 1)]
    melody = skyline(build(notes))
    assert melody.pitch.tolist() == [72, 74, 76]
    assert (melody.onset / 480).tolist() == [0, 2, 3]
    assert (melody.duration / 480).tolist() == [2, 1, 1]


def test_an_inner_voice_under_a_held_melody_note_is_not_melody() -> None:
    notes = [(79, 0, 4), (60, 0, 1), (62, 1, 1), (64, 2, 1), (77, 4, 1)]
    assert skyline(build(notes)).pitch.tolist() == [79, 77]


def test_drums_are_not_melody() -> None:
    score = build([(60, 0, 1), (90, 0, 1), (62, 1, 1)])
    score = score.with_notes(is_drum=np.array([False, True, False]))
    assert skyline(score).pitch.tolist() == [60, 62]


@settings(max_examples=60, deadline=None)
@given(scores(max_notes=40))
def test_skyline_is_monophonic_and_drawn_from_the_notes(score) -> None:
    melody = skyline(score)
    assert (np.diff(melody.onset) > 0).all()
    assert (melody.duration >= 0).all()
    assert (melody.onset[:-1] + melody.duration[:-1] <= melody.onset[1:]).all()
    pitched = set(
        zip(score.pitch[~score.is_drum].tolist(), score.onset[~score.is_drum].tolist(), strict=True)
    )
    assert set(zip(melody.pitch.tolist(), melody.onset.tolist(), strict=True)) <= pitched


def test_parsons_code_and_interval_histogram() -> None:
    melody = skyline(build([(60, 0, 1), (67, 1, 1), (67, 2, 1), (64, 3, 1), (40, 4, 1)]))
    assert parsons_code(melody) == "*urdd"
    histogram = interval_histogram(melody)
    assert histogram.shape == (25,)
    assert histogram[12 + 7] == 1 and histogram[12] == 1 and histogram[12 - 3] == 1 and histogram[0] == 1
    assert histogram.sum() == 4
    assert parsons_code(skyline(build([]))) == ""


def test_a_transposed_motif_is_found_with_its_occurrences() -> None:
    motif = [0, 2, 4, 0, 7]  # a five-note figure, then filler that never repeats it
    rng = np.random.default_rng(0)
    pitches: list[int] = []
    starts = []
    for transpose in (60, 65, 58):
        starts.append(len(pitches))
        pitches += [transpose + m for m in motif]
        pitches += [int(p) for p in rng.choice([70, 83, 49, 77, 52, 90], 4, replace=False)]
    melody = skyline(build([(p, i, 1) for i, p in enumerate(pitches)]))
    found = find_motifs(melody)
    best = found[0]
    assert best.intervals == (2, 2, -4, 7)
    assert best.starts.tolist() == starts


def test_a_long_literal_repeat_is_one_motif() -> None:
    phrase = [60, 62, 64, 65, 67, 65, 64, 62, 60, 55, 57, 59]
    pitches = phrase + [90, 30] + [p + 5 for p in phrase]
    found = find_motifs(skyline(build([(p, i, 1) for i, p in enumerate(pitches)])))
    assert found[0].starts.tolist() == [0, 14]
    assert len(found[0].intervals) == len(phrase) - 1
    assert all(len(m.starts) >= 2 for m in found)
