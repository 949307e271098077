"""write_midi / midi_bytes: what is written reads back to the same notes, and the file is well formed."""

from __future__ import annotations

import os
from collections import Counter

import mido
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aurl.errors import MidiError
from aurl.midi import Score, TempoMap, TimeSignatureMap, midi_bytes, read_midi, read_midi_bytes, write_midi
from aurl.midi.score import KeySignatureMap
from strategies import scores

ROUND_TRIP = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def named_notes(score: Score) -> Counter:  # type: ignore[type-arg]
    """The notes as a multiset, each with its track's name instead of its track index."""
    columns = (score.pitch, score.onset, score.duration, score.velocity, score.program, score.is_drum)
    names = [score.track_names[t] for t in score.track.tolist()]
    return Counter(zip(names, *(c.tolist() for c in columns), strict=True))


def canonical(ticks: np.ndarray, *values: np.ndarray) -> list[tuple]:  # type: ignore[type-arg]
    """A map as the reader returns it: the last change at each tick, repeats of a value dropped."""
    last = {}
    for row in zip(ticks.tolist(), *(v.tolist() for v in values), strict=True):
        last[row[0]] = row[1:]
    out: list[tuple] = []  # type: ignore[type-arg]
    for tick in sorted(last):
        if not out or out[-1][1:] != last[tick]:
            out.append((tick, *last[tick]))
    return out


@ROUND_TRIP
@given(scores())
def test_any_score_reads_back_with_the_same_notes(score):
    back = read_midi_bytes(midi_bytes(score))
    assert back.ticks_per_beat == score.ticks_per_beat
    assert named_notes(back) == named_notes(score)
    ts = score.time_signatures
    assert canonical(
        back.time_signatures.ticks, back.time_signatures.numerator, back.time_signatures.denominator
    ) == (canonical(ts.ticks, ts.numerator, ts.denominator))
    stored = np.minimum(
        60e6 / np.round(60e6 / score.tempos.bpm), 1000.0
    )  # microseconds per beat, reader's clamp
    expected = canonical(score.tempos.ticks, stored)
    assert back.tempos.ticks.tolist() == [t for t, _ in expected]
    assert back.tempos.bpm.tolist() == pytest.approx([b for _, b in expected])


@st.composite
def instrument_scores(draw) -> Score:  # type: ignore[no-untyped-def]
    """Scores as the reader makes them: every track has notes, one program and drum flag, a unique
    name; a note ends at the latest where the next of its track and pitch starts (zero-length notes
    included); maps without repeats."""
    tpq = draw(st.sampled_from([24, 96, 480, 10080]))
    n_tracks = draw(st.integers(1, 20))
    per_track = [draw(st.integers(1, 12)) for _ in range(n_tracks)]
    track = np.repeat(np.arange(n_tracks), per_track)
    n = len(track)
    kind = np.array([draw(st.tuples(st.integers(0, 127), st.booleans())) for _ in range(n_tracks)])
    notes = {
        "pitch": draw(
            st.lists(st.integers(30, 40), min_size=n, max_size=n)
        ),  # narrow: many same-pitch clashes
        "onset": [o * tpq // 4 for o in draw(st.lists(st.integers(0, 32), min_size=n, max_size=n))],
        "duration": [d * tpq // 8 for d in draw(st.lists(st.integers(0, 16), min_size=n, max_size=n))],
        "velocity": draw(st.lists(st.integers(1, 127), min_size=n, max_size=n)),
        "program": kind[track, 0],
        "is_drum": kind[track, 1].astype(bool),
        "track": track,
    }
    _cut_at_next_onset(notes)
    n_tempos = draw(st.integers(0, 3))
    microseconds = draw(
        st.lists(st.integers(60_000, 2_000_000), min_size=n_tempos, max_size=n_tempos, unique=True)
    )
    tempo_ticks = sorted(
        draw(st.lists(st.integers(0, 40 * tpq), min_size=n_tempos, max_size=n_tempos, unique=True))
    )
    key_ticks = sorted(draw(st.lists(st.integers(0, 40 * tpq), max_size=2, unique=True)))
    keys = [(s, m) for s, m in zip(range(-3, 3), [True, False] * 3, strict=True)][: len(key_ticks)]
    return Score.from_notes(
        tpq,
        {k: np.asarray(v) for k, v in notes.items()},
        tempos=TempoMap(tempo_ticks, [60e6 / us for us in microseconds]),
        time_signatures=TimeSignatureMap([0, 4 * tpq], [3, 6], [4, 8]),
        key_signatures=KeySignatureMap(key_ticks, [k[0] for k in keys], [k[1] for k in keys]),
        track_names=tuple(
            draw(
                st.lists(
                    st.text("abcé旋 ", min_size=1, max_size=8)
                    .map(lambda s: f"v{s}")
                    .filter(lambda s: s == " ".join(s.split())),
                    min_size=n_tracks,
                    max_size=n_tracks,
                    unique=True,
                )
            )
        ),
    )


def _cut_at_next_onset(notes: dict) -> None:  # type: ignore[type-arg]
    track, pitch, onset = (np.asarray(notes[k]) for k in ("track", "pitch", "onset"))
    duration = np.asarray(notes["duration"])
    order = np.lexsort((duration, onset, pitch, track))
    nxt = np.full(len(order), np.iinfo(np.int64).max)
    same = (track[order][1:] == track[order][:-1]) & (pitch[order][1:] == pitch[order][:-1])
    nxt[:-1] = np.where(same, onset[order][1:], nxt[:-1])
    duration[order] = np.minimum(duration[order], nxt - onset[order])
    notes["duration"] = duration


@ROUND_TRIP
@given(instrument_scores())
def test_reader_shaped_scores_round_trip_exactly(score):
    back = read_midi_bytes(midi_bytes(score))
    assert back == score.sorted()  # notes, tracks, names, maps: all of it (neither has repairs)
    assert back.sorted() == back


def test_the_file_layout(tmp_path):
    tpq = 96
    n = 20
    score = Score.from_notes(
        tpq,
        {
            "pitch": np.full(n + 1, 60),
            "onset": np.zeros(n + 1, int),
            "duration": np.full(n + 1, tpq),
            "program": np.r_[np.arange(n), 0],
            "is_drum": np.r_[np.zeros(n, bool), True],
            "track": np.arange(n + 1),
        },
        tempos=TempoMap([0], [100.0]),
        time_signatures=TimeSignatureMap([0], [6], [8]),
        key_signatures=KeySignatureMap([0], [-2], [True]),
        track_names=tuple(f"Part {i}" for i in range(n)) + ("Drums",),
    )
    path = tmp_path / "layout.mid"
    write_midi(score, path, text="temperature=0.9 top_p=0.95")
    midi = mido.MidiFile(path)  # strict: the file is standard
    assert midi.type == 1 and midi.ticks_per_beat == tpq and len(midi.tracks) == n + 2
    conductor = {m.type: m for m in midi.tracks[0]}
    assert conductor["text"].text == "temperature=0.9 top_p=0.95"
    assert conductor["set_tempo"].tempo == 600_000
    assert (conductor["time_signature"].numerator, conductor["time_signature"].denominator) == (6, 8)
    assert conductor["key_signature"].key == "Gm"
    channels = []
    for track, name in zip(midi.tracks[1:], score.track_names, strict=True):
        assert track[0].type == "track_name" and track[0].name == name
        channels.append({m.channel for m in track if hasattr(m, "channel")})
    assert all(len(c) == 1 for c in channels)
    pitched = [c.pop() for c in channels[:-1]]
    assert channels[-1] == {9}  # drums on MIDI channel 10
    assert 9 not in pitched and pitched[:15] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15]
    assert pitched[15:] == [0, 1, 2, 3, 4]  # more than 15 pitched tracks share channels
    back = read_midi(path)
    assert back.program.tolist() == score.program.tolist() and back.track_names == score.track_names


def test_written_tracks_split_where_one_midi_track_cannot_hold_the_notes():
    # one Score track: two overlapping 60s, a drum note, and two programs starting together
    score = Score.from_notes(
        96,
        {
            "pitch": [60, 60, 36, 64, 67],
            "onset": [0, 48, 0, 192, 192],
            "duration": [96, 96, 48, 96, 96],
            "program": [0, 0, 0, 5, 6],
            "is_drum": [False, False, True, False, False],
            "track": [0, 0, 0, 0, 0],
        },
        track_names=("Piano",),
    )
    back = read_midi_bytes(midi_bytes(score))
    assert named_notes(back) == named_notes(score)
    assert set(back.track_names) == {"Piano"} and back.n_tracks > 1


def test_program_changes_within_a_track_keep_one_track():
    score = Score.from_notes(
        96, {"pitch": [60, 62, 64], "onset": [0, 96, 192], "duration": [96] * 3, "program": [0, 40, 0]}
    )
    back = read_midi_bytes(midi_bytes(score))
    assert back.n_tracks == 1 and back.program.tolist() == [0, 40, 0]


def test_long_silences_are_split_into_valid_deltas():
    tpq = 10080
    score = Score.from_notes(tpq, {"pitch": [60, 62], "onset": [0, 60_000 * tpq], "duration": [tpq, tpq]})
    score = score.with_notes(onset=np.array([0, 2**29]))  # a gap longer than one 4-byte delta holds
    back = read_midi_bytes(midi_bytes(score))
    assert back.onset.tolist() == [0, 2**29] and back.duration.tolist() == [tpq, tpq]


def test_an_invalid_score_is_refused_and_the_old_file_kept(tmp_path):
    path = tmp_path / "keep.mid"
    path.write_bytes(b"old")
    bad = Score.from_notes(96, {"pitch": [130], "onset": [0], "duration": [10]})
    with pytest.raises(
        MidiError, match=r"keep\.mid: cannot write this score as MIDI: 1 notes with pitch outside"
    ):
        write_midi(bad, path)
    assert path.read_bytes() == b"old"
    with pytest.raises(MidiError, match="ticks_per_beat 40000"):
        midi_bytes(Score.empty(40000))


def test_writing_is_atomic_and_leaves_no_temporary_files(tmp_path):
    score = Score.from_notes(96, {"pitch": [60], "onset": [0], "duration": [96]})
    path = tmp_path / "song.mid"
    path.write_bytes(b"previous contents")
    write_midi(score, path)
    assert read_midi(path).n_notes == 1
    assert os.listdir(tmp_path) == ["song.mid"]
    with pytest.raises(MidiError, match="cannot write the file"):
        write_midi(score, tmp_path / "missing-folder" / "x.mid")
    assert os.listdir(tmp_path) == ["song.mid"]


def test_an_empty_score_writes_a_conductor_track_only():
    data = midi_bytes(Score.empty(480))
    back = read_midi_bytes(data)
    assert back.n_notes == 0 and back.ticks_per_beat == 480 and back.repairs == ()
    assert data.count(b"MTrk") == 1
