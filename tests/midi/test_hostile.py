"""The reader never raises anything but MidiError, never hangs, and stays bounded on hostile input."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aurl.errors import MidiError
from aurl.midi import metadata, midi_bytes, read_midi_bytes, validate

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "midi"
CHORALE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "bach-chorales" / "bwv10.7.mid"
SEEDS = [
    (FIXTURES / relative).read_bytes()
    for relative in (
        "multitrack/satb_one_channel.mid",
        "multitrack/tempo_and_signatures.mid",
        "multitrack/type0_multichannel.mid",
        "single_track/sustain_pedal.mid",
        "single_track/smpte_25fps.mid",
        "single_track/wrapped.rmi",
    )
] + ([CHORALE.read_bytes()] if CHORALE.is_file() else [])
FUZZ = settings(
    max_examples=200,
    deadline=timedelta(seconds=2),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def read_or_reject(data: bytes, time_limit, *, sustain_pedal: bool = False) -> None:  # type: ignore[no-untyped-def]
    """Read `data`: a MidiError is fine; a Score must be valid, described and written back unchanged."""
    with time_limit(10):
        try:
            score = read_midi_bytes(data, "fuzz.mid", sustain_pedal=sustain_pedal)
        except MidiError as error:
            assert str(error).startswith("fuzz.mid: ") and "\n" not in str(error)
            return
        assert validate(score) == []
        metadata(score)
        again = read_midi_bytes(midi_bytes(score))
    for name in ("pitch", "onset", "duration", "velocity", "program", "is_drum", "track"):
        assert np.array_equal(getattr(again, name), getattr(score, name)), name
    assert again.track_names == score.track_names
    assert again.tempos.ticks.tolist() == score.tempos.ticks.tolist()
    assert again.tempos.bpm == pytest.approx(score.tempos.bpm, rel=1e-5)
    assert again.time_signatures == score.time_signatures and again.key_signatures == score.key_signatures


@st.composite
def mutated(draw) -> bytes:  # type: ignore[no-untyped-def]
    """A seed file with a few bit flips, cuts, insertions, deletions or overwrites."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        where = draw(st.integers(0, max(len(data) - 1, 0)))
        operation = draw(st.sampled_from(["flip", "cut", "insert", "delete", "overwrite"]))
        if operation == "flip" and data:
            data[where] ^= 1 << draw(st.integers(0, 7))
        elif operation == "cut":
            del data[where:]
        elif operation == "insert":
            data[where:where] = draw(st.binary(min_size=1, max_size=16))
        elif operation == "delete":
            del data[where : where + draw(st.integers(1, 16))]
        else:
            chunk = draw(st.binary(min_size=1, max_size=8))
            data[where : where + len(chunk)] = chunk
    return bytes(data)


@FUZZ
@given(st.binary(max_size=3000))
def test_random_bytes_raise_only_midi_error(time_limit, data):
    read_or_reject(data, time_limit)


@FUZZ
@given(st.binary(max_size=3000), st.integers(0, 2), st.integers(0, 0x7FFF))
def test_random_track_bodies_raise_only_midi_error(time_limit, body, fmt, division):
    header = b"MThd\x00\x00\x00\x06" + fmt.to_bytes(2, "big") + b"\x00\x01" + division.to_bytes(2, "big")
    read_or_reject(header + b"MTrk" + len(body).to_bytes(4, "big") + body, time_limit)


@FUZZ
@given(mutated(), st.booleans())
def test_mutated_files_raise_only_midi_error(time_limit, data, sustain_pedal):
    read_or_reject(data, time_limit, sustain_pedal=sustain_pedal)


def smf(*tracks: bytes, division: int = 96, fmt: int = 1) -> bytes:
    head = (
        b"MThd\x00\x00\x00\x06"
        + fmt.to_bytes(2, "big")
        + len(tracks).to_bytes(2, "big")
        + division.to_bytes(2, "big")
    )
    return head + b"".join(b"MTrk" + len(t).to_bytes(4, "big") + t for t in tracks)


NOTE = b"\x00\x90\x3c\x64\x60\x80\x3c\x00"  # a quarter note, middle C
EOT = b"\x00\xff\x2f\x00"


def test_a_one_megabyte_sysex_is_stepped_over(time_limit):
    sysex = b"\x00\xf0\xc0\x80\x00" + bytes((1 << 20) - 1) + b"\xf7"  # length 2**20 in 3 bytes: C0 80 00
    with time_limit(5):
        score = read_midi_bytes(smf(sysex + NOTE + EOT))
    assert score.n_notes == 1 and score.repairs == ()


def test_millions_of_events_read_in_bounded_time(time_limit):
    body = (
        b"\x00\x90\x3c\x64" + b"\x01\x3c\x00\x00\x3c\x64" * 1_000_000 + b"\x01\x3c\x00" + EOT
    )  # running status
    start = time.perf_counter()
    with time_limit(30):
        score = read_midi_bytes(smf(body))
    assert score.n_notes == 1_000_001 and np.all(score.duration == 1)
    assert time.perf_counter() - start < 30


def test_the_event_cap_stops_reading_with_a_repair(time_limit, monkeypatch):
    import aurl.midi.events as events_module
    import aurl.midi.read as read_module

    monkeypatch.setattr(read_module, "MAX_EVENTS", 1000)
    monkeypatch.setattr(read_module, "_FLUSH_ITEMS", 300)  # 100 events
    monkeypatch.setattr(events_module, "SEGMENT_BYTES", 300)  # 100 events of 3 bytes
    body = b"\x00\x90\x3c\x64" + b"\x01\x3c\x00\x00\x3c\x64" * 5000 + EOT
    with time_limit(5):
        score = read_midi_bytes(smf(body, body))
    assert 500 <= score.n_notes <= 600  # 2 events a note: the cap plus at most a segment
    assert any(line.startswith("stopped after") for line in score.repairs)


def test_huge_deltas_are_capped_not_allocated(time_limit):
    far = b"\xff\xff\xff\x7f\x90\x40\x64"  # each event 0x0FFFFFFF ticks after the one before
    with time_limit(5):
        score = read_midi_bytes(smf(NOTE + far * 10_000 + EOT))
    assert score.n_notes == 1 and score.end_ticks == 96
    assert "dropped 10000 events later than 65536 beats" in score.repairs
    assert metadata(score)["duration_beats"] == 1.0


def test_two_thousand_simultaneous_notes(time_limit):
    tracks = []
    for track in range(20):
        ons = b"".join(b"\x00" + bytes((0x90 | (track % 9), 10 + p, 80)) for p in range(100))
        offs = b"\x60" + b"".join(bytes((0x80 | (track % 9), 10 + p, 0)) + b"\x00" for p in range(100))[:-1]
        tracks.append(ons + offs + EOT)
    with time_limit(5):
        score = read_midi_bytes(smf(*tracks))
    assert score.n_notes == 2000 and score.n_tracks == 20 and np.all(score.duration == 96)
    assert metadata(score)["max_polyphony"] == 2000


def test_twenty_thousand_tiny_tracks(time_limit):
    with time_limit(20):
        score = read_midi_bytes(smf(*[NOTE + EOT] * 20_000))
    assert score.n_tracks == 20_000 and score.n_notes == 20_000


def test_long_runs_of_garbage_stay_linear(time_limit):
    with time_limit(10):
        orphan = read_midi_bytes(smf(b"\x00" + b"\x3c" * 1_000_000 + NOTE + EOT))
        endless_length = read_midi_bytes(smf(b"\x00\xff\x01" + b"\xff" * 1_000_000 + NOTE + EOT))
        endless_delta = read_midi_bytes(smf(NOTE + b"\x81" * 1_000_000))
    assert (
        orphan.n_notes == 1 and "skipped 1000001 data bytes" in orphan.repairs[0]
    )  # the note's delta byte too
    assert endless_length.n_notes == 0
    assert endless_delta.n_notes == 1


def test_the_reader_imports_no_heavy_library():
    code = "import sys, aurl.midi; print(sorted({'mido', 'miditoolkit', 'torch'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_kept_meta_events_are_capped_per_file(monkeypatch):
    import aurl.midi.read as read_module

    monkeypatch.setattr(read_module, "MAX_KEPT_METAS", 10)
    tempos = b"".join(b"\x10\xff\x51\x03" + (500_000 + k).to_bytes(3, "big") for k in range(20))
    score = read_midi_bytes(smf(tempos + EOT, tempos + NOTE + EOT))
    assert len(score.tempos) == 10
    assert score.repairs == (
        "track 0: ignored 10 meta events past the limit of kept ones",
        "track 1: ignored 20 meta events past the limit of kept ones",
    )


def test_more_instrument_tracks_than_a_score_holds_is_rejected(monkeypatch):
    import aurl.midi.repair as repair_module

    monkeypatch.setattr(repair_module, "MAX_SCORE_TRACKS", 2)
    with pytest.raises(MidiError, match=r"^x\.mid: 3 instrument tracks, more than the 2 a Score holds$"):
        read_midi_bytes(smf(NOTE + EOT, NOTE + EOT, NOTE + EOT), "x.mid")


def test_an_unexpected_internal_error_still_surfaces_as_midi_error(monkeypatch):
    import aurl.midi.read as read_module

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise IndexError("index 7 is out of bounds")

    monkeypatch.setattr(read_module, "build_score", broken)
    with pytest.raises(MidiError, match=r"^x\.mid: unreadable MIDI data \(IndexError: index 7"):
        read_midi_bytes(smf(NOTE + EOT), "x.mid")
