"""validate() names what MIDI cannot hold; metadata() describes a score in plain JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

from aurl.midi import Score, TempoMap, TimeSignatureMap, metadata, validate
from aurl.midi.score import KeySignatureMap
from aurl.midi.validate import max_polyphony, ticks_to_seconds


def one_note(**overrides) -> Score:  # type: ignore[no-untyped-def]
    notes = {"pitch": [60], "onset": [0], "duration": [96], **{k: [v] for k, v in overrides.items()}}
    return Score.from_notes(96, {k: np.asarray(v) for k, v in notes.items()})


def test_a_good_score_has_no_problems():
    assert validate(one_note()) == []
    assert validate(Score.empty()) == []


@pytest.mark.parametrize(
    ("score", "problem"),
    [
        (one_note(pitch=128), "1 notes with pitch outside 0..127"),
        (one_note(velocity=0), "1 notes with velocity outside 1..127"),
        (one_note(program=200), "1 notes with program outside 0..127"),
        (one_note(onset=-5), "1 notes with a negative onset"),
        (one_note(duration=-1), "1 notes with a negative duration"),
        (one_note(onset=96 * 2**16), "1 notes with an end later than 65536 beats"),
        (Score.empty(2**15), "ticks_per_beat 32768 is above 32767, the MIDI maximum"),
        (
            Score.empty().__class__(96, *one_note().notes().values(), tempos=TempoMap([96, 0], [90, 100])),
            "tempo map ticks are negative or out of order",
        ),
        (
            Score.empty().__class__(96, *one_note().notes().values(), tempos=TempoMap([0], [0.0])),
            "tempo map has a tempo that is not a positive number of bpm",
        ),
        (
            Score.empty().__class__(
                96, *one_note().notes().values(), time_signatures=TimeSignatureMap([0], [4], [3])
            ),
            "time signature denominator not one of (1, 2, 4, 8, 16, 32, 64)",
        ),
        (
            Score.empty().__class__(
                96, *one_note().notes().values(), time_signatures=TimeSignatureMap([0], [0], [4])
            ),
            "time signature numerator outside 1..255",
        ),
        (
            Score.empty().__class__(
                96, *one_note().notes().values(), key_signatures=KeySignatureMap([0], [9], [False])
            ),
            "key signature with more than 7 sharps or flats",
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_each_problem_is_named(score, problem):
    assert validate(score) == [problem]


def test_seconds_follow_the_tempo_map():
    tempos = TempoMap([960, 1920], [60.0, 240.0])  # 120 bpm before the first change
    ticks = np.array([0, 480, 960, 1440, 1920, 2400])
    assert ticks_to_seconds(ticks, tempos, 480).tolist() == [0.0, 0.5, 1.0, 2.0, 3.0, 3.25]
    assert ticks_to_seconds(ticks, TempoMap(), 480).tolist() == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]


def test_polyphony_counts_overlaps_not_touching_or_empty_notes():
    score = Score.from_notes(
        96,
        {
            "pitch": [60, 64, 67, 72, 60, 50],
            "onset": [0, 0, 48, 96, 96, 50],
            "duration": [96, 96, 48, 96, 0, 0],
        },
    )
    assert max_polyphony(score) == 3
    assert max_polyphony(Score.empty()) == 0


def test_metadata_is_plain_json_with_every_field():
    score = Score.from_notes(
        480,
        {
            "pitch": [60, 62, 36, 38],
            "onset": [0, 960, 0, 480],
            "duration": [960, 960, 240, 240],
            "program": [40, 41, 0, 0],
            "is_drum": [False, False, True, True],
            "track": [0, 0, 2, 2],
        },
        tempos=TempoMap([0, 960], [120.0, 60.0]),
        time_signatures=TimeSignatureMap([0], [3], [4]),
        key_signatures=KeySignatureMap([0], [-1], [True]),
        track_names=("Violin", "Silent", "Kit"),
        repairs=("track 1: 1 note-offs without a note-on dropped",),
    )
    info = json.loads(json.dumps(metadata(score)))
    assert info == {
        "ticks_per_beat": 480,
        "duration_beats": 4.0,
        "duration_seconds": 3.0,
        "n_notes": 4,
        "n_tracks": 3,
        "max_polyphony": 2,
        "tempos": [{"tick": 0, "bpm": 120.0}, {"tick": 960, "bpm": 60.0}],
        "time_signatures": [{"tick": 0, "numerator": 3, "denominator": 4}],
        "key_signatures": [{"tick": 0, "sharps": -1, "minor": True}],
        "instruments": [
            {"track": 0, "name": "Violin", "program": 40, "is_drum": False, "n_notes": 2},
            {"track": 1, "name": "Silent", "program": 0, "is_drum": False, "n_notes": 0},
            {"track": 2, "name": "Kit", "program": 0, "is_drum": True, "n_notes": 2},
        ],
        "repairs": ["track 1: 1 note-offs without a note-on dropped"],
    }


def test_metadata_of_an_empty_score():
    info = metadata(Score.empty(96))
    assert info["duration_seconds"] == 0.0 and info["n_notes"] == 0 and info["instruments"] == []
