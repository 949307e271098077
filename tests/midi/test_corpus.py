"""The reader on real music: the 409 Bach chorales and the 112 messy real-world files, checked
against mido (which reads MIDI messages but pairs no notes) through a plain-Python reference of the
documented pairing rules."""

from __future__ import annotations

import json
from collections import defaultdict
from itertools import groupby
from pathlib import Path

import mido
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aurl.errors import MidiError
from aurl.midi import metadata, read_midi, validate

REAL_WORLD = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real-world"
REAL_WORLD_FILES = (
    sorted(
        p
        for p in REAL_WORLD.rglob("*")
        if p.is_file() and p.suffix.lower() in {".mid", ".midi", ".kar", ".rmi"}
    )
    if REAL_WORLD.is_dir()
    else []
)
# Files mido cannot read but we can -> the repair that says why (None: a leniency, not a repair).
ONLY_WE_READ = {
    "Issue104_Bizarre_Love_Triangle2.mid": "track 3: a delta time longer than 4 bytes",
    "test-corrupt-file-missing-byte.mid": "track 0: truncated inside an event",
    "test-illegal-message-all.mid": "track 0: skipped 13 system messages",
    "test-illegal-message-f4.mid": "track 0: skipped 1 system messages",
    "test-illegal-message-f9.mid": "track 0: skipped 1 system messages",
    "test-illegal-message-fd.mid": "track 0: skipped 1 system messages",
    "test-non-midi-track.mid": "skipped a 'Junk' chunk",
    "test-running-status-sysex.mid": None,  # running status survives a sysex, as it does a meta event
}
# music21 wrote a few same-pitch overlaps within a voice, and in bwv299/bwv315 an off before its on.
CHORALES_WITH_REPAIRS = {"bwv248.23-2.mid", "bwv299.mid", "bwv315.mid"}
WE_REJECT = {
    "test-empty-file.mid": "empty file (0 bytes)",
    "test-not-a-midi-file.mid": "not a MIDI file",
    "negative-ticks-per-beat.mid": "SMPTE division 0xFFFF",
}


def reference_notes(path: Path) -> list[list[tuple[int, int, int, int]]]:
    """Per (track, channel) with notes, in that order: sorted (pitch, onset, duration, velocity),
    paired from mido's messages by the rules read_midi documents, one event at a time."""
    midi = mido.MidiFile(path, clip=True)
    groups: dict[tuple[int, int], list[tuple[int, int, int, int]]] = defaultdict(list)
    offset = 0
    for index, track in enumerate(midi.tracks):
        tick, events = 0, defaultdict(list)
        for message in track:
            tick += message.time
            if message.type in ("note_on", "note_off"):
                is_on = message.type == "note_on" and message.velocity > 0
                events[(message.channel, message.note)].append((tick + offset, is_on, message.velocity))
        for (channel, pitch), key_events in events.items():
            for onset, end, velocity in _pair(key_events, tick + offset):
                groups[(index, channel)].append((pitch, onset, end - onset, velocity))
        if midi.type == 2:
            offset += tick
    return [sorted(groups[key]) for key in sorted(groups)]


def _pair(events: list[tuple[int, bool, int]], track_end: int) -> list[tuple[int, int, int]]:
    notes, sounding = [], None
    for tick, block_iter in groupby(events, key=lambda e: e[0]):
        block = list(block_iter)
        offs = [k for k, (_, is_on, _) in enumerate(block) if not is_on]
        if sounding is not None and offs:  # a note sounding from before: the tick's first off ends it
            notes.append((sounding[0], tick, sounding[1]))
            sounding = None
            del block[offs[0]]
        for _, is_on, velocity in block:
            if sounding is not None:
                notes.append((sounding[0], tick, sounding[1]))
                sounding = None
            if is_on:
                sounding = (tick, velocity)
    if sounding is not None:
        notes.append((sounding[0], track_end, sounding[1]))
    return notes


def score_notes(score) -> list[list[tuple[int, int, int, int]]]:  # type: ignore[no-untyped-def]
    columns = (score.pitch, score.onset, score.duration, score.velocity)
    return [
        sorted(
            tuple(int(v) for v in row) for row in zip(*(c[score.track == k] for c in columns), strict=True)
        )
        for k in range(score.n_tracks)
    ]


def test_all_chorales_read_exactly_with_voices_apart(chorale_dir, chorale_manifest):
    paths = sorted(chorale_dir.glob("*.mid"))
    assert len(paths) == 409
    for path in paths:
        row = chorale_manifest[path.name]
        score = read_midi(path)
        assert score.n_notes == int(row["n_notes"]), path.name
        assert score.track_names == tuple(row["part_names"].split("|")), path.name
        assert score.ticks_per_beat == 10080 and len(score.tempos) == 1, path.name
        assert bool(score.repairs) == (path.name in CHORALES_WITH_REPAIRS) and validate(score) == [], (
            path.name
        )
        ts = score.time_signatures
        signatures = [f"{n}/{d}" for n, d in zip(ts.numerator, ts.denominator, strict=True)]
        assert "|".join(signatures) == row["time_signature"], path.name
        assert score_notes(score) == reference_notes(path), path.name


def test_a_chorales_maps_match_mido(chorale_dir):
    path = chorale_dir / "bwv1.6.mid"
    score = read_midi(path)
    meta = [m for m in mido.MidiFile(path).tracks[0] if m.is_meta]
    tempo = next(m.tempo for m in meta if m.type == "set_tempo")
    assert score.tempos.ticks.tolist() == [0] and score.tempos.bpm[0] == pytest.approx(60e6 / tempo)
    assert score.key_signatures.sharps.tolist() == [-1] and not score.key_signatures.minor[0]
    info = metadata(score)
    assert info["duration_beats"] == 80.0
    assert info["duration_seconds"] == pytest.approx(80 * tempo / 1e6)
    assert [i["name"] for i in info["instruments"]] == ["Horn 2", "Soprano", "Alto", "Tenor", "Bass"]
    assert info["max_polyphony"] == 5


@pytest.mark.parametrize("path", REAL_WORLD_FILES, ids=lambda p: p.name)
def test_real_world_files_read_or_are_rejected_with_a_reason(path, real_world_manifest):
    row = real_world_manifest[path.relative_to(REAL_WORLD).as_posix()]
    try:
        score = read_midi(path)
    except MidiError as error:
        assert path.name in WE_REJECT, f"rejected a file we expected to read: {error}"
        assert str(error).startswith(f"{path}: {WE_REJECT[path.name]}")
        return
    assert path.name not in WE_REJECT
    assert validate(score) == []
    json.dumps(metadata(score))
    if row["mido_clip"] != "ok":
        assert path.name in ONLY_WE_READ, "mido failed on this file; say why we read it"
        reason = ONLY_WE_READ[path.name]
        assert reason is None or any(line.startswith(reason) for line in score.repairs), score.repairs
        assert score.n_notes > 0
        return
    assert score.n_notes == int(row["n_notes"])
    assert score_notes(score) == reference_notes(path)


def test_pretty_midi_example_maps(real_world_manifest):
    path = REAL_WORLD / "pretty-midi" / "example.mid"
    score = read_midi(path)
    assert score.ticks_per_beat == 96
    assert len(np.unique(score.tempos.bpm)) == 93
    signatures = set(
        zip(score.time_signatures.numerator.tolist(), score.time_signatures.denominator.tolist(), strict=True)
    )
    assert signatures == {(4, 4), (5, 4), (2, 4), (12, 8), (6, 8)}
    # the map equals mido's tempo events: the last at each tick, repeats of the same tempo dropped
    tick, last_at = 0, {}
    for message in mido.MidiFile(path).tracks[0]:
        tick += message.time
        if message.type == "set_tempo":
            last_at[tick] = 60e6 / message.tempo
    changes = sorted(last_at.items())
    expected = [(t, b) for k, (t, b) in enumerate(changes) if k == 0 or b != changes[k - 1][1]]
    assert score.tempos.ticks.tolist() == [t for t, _ in expected]
    assert score.tempos.bpm.tolist() == pytest.approx([b for _, b in expected])
    assert score.is_drum.sum() == int(real_world_manifest["pretty-midi/example.mid"]["drum_notes"])
    end, seconds, previous, tempo = score.end_ticks, 0.0, 0, 500_000
    for tick, bpm in expected:  # mido's seconds up to the last note's end
        seconds += mido.tick2second(min(tick, end) - previous, 96, tempo)
        previous, tempo = min(tick, end), round(60e6 / bpm)
    seconds += mido.tick2second(end - previous, 96, tempo)
    assert metadata(score)["duration_seconds"] == pytest.approx(seconds)


@st.composite
def note_streams(draw) -> bytes:  # type: ignore[no-untyped-def]
    """Type-1 files of dense, messy note events: few pitches and channels, many same-tick clashes."""
    tracks = []
    for _ in range(draw(st.integers(1, 3))):
        body = b""
        for _ in range(draw(st.integers(0, 40))):
            delta = draw(st.sampled_from([0, 0, 0, 1, 5]))
            kind = draw(st.sampled_from([0x90, 0x90, 0x80]))
            channel, pitch = draw(st.integers(0, 1)), draw(st.integers(60, 61))
            velocity = draw(st.sampled_from([0, 64, 100]))
            body += bytes((delta, kind | channel, pitch, velocity))
        tracks.append(body + bytes((draw(st.integers(0, 3)), 0xFF, 0x2F, 0x00)))
    head = b"MThd\x00\x00\x00\x06\x00\x01" + len(tracks).to_bytes(2, "big") + b"\x00\x60"
    return head + b"".join(b"MTrk" + len(t).to_bytes(4, "big") + t for t in tracks)


@settings(max_examples=150, deadline=None)
@given(note_streams())
def test_vectorised_pairing_matches_the_one_event_at_a_time_reference(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("streams") / "stream.mid"
    path.write_bytes(data)
    assert score_notes(read_midi(path)) == reference_notes(path)
