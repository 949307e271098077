"""The hand-made fixtures in tests/data/midi: each one's documented behaviour (see its README)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from aurl.errors import MidiError
from aurl.midi import read_midi, read_midi_bytes

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "midi"
SCALE = [(0, pitch, 96 * i, 96) for i, pitch in enumerate((60, 62, 64, 65, 67, 69, 71, 72))]

REJECTED = {
    "corrupted/empty.mid": "empty file (0 bytes)",
    "corrupted/not_midi.mid": "not a MIDI file: no MThd header",
    "corrupted/truncated_header.mid": "truncated header: 10 bytes",
    "corrupted/bad_header_length.mid": "MThd header length is 2, expected 6",
    "corrupted/smpte_invalid.mid": "SMPTE division 0xFF28 (1 frames per second x 40 ticks per frame)",
    "corrupted/tracks_announced_missing.mid": "no MTrk track chunk found, though the header announces 3",
}
TWO_TRACKS = sorted(SCALE + [(1, 48, 0, 96)], key=lambda n: (n[2], n[0]))
# file -> (notes as (track, pitch, onset, duration) in canonical order, the expected repair lines)
READ = {
    "corrupted/truncated_track.mid": (
        SCALE[:3],
        (
            "track 0: chunk length 68 runs 47 bytes past the end of the file",
            "track 0: truncated inside an event; kept the events before the cut",
            "track 0: 1 note-ons without note-off closed at the track end",
        ),
    ),
    "corrupted/chunk_length_too_long.mid": (
        TWO_TRACKS,
        ("track 0: chunk length is wrong; the next chunk follows its end-of-track",),
    ),
    "corrupted/chunk_length_too_short.mid": (
        TWO_TRACKS,
        ("track 0: chunk length 58 is too short; read on to byte 90",),
    ),
    "corrupted/garbage_between_chunks.mid": (
        TWO_TRACKS,
        ("track 0: skipped 10 bytes of garbage after the track",),
    ),
    "corrupted/missing_end_of_track.mid": (SCALE, ("track 0: no end-of-track event",)),
    "corrupted/running_status_without_status.mid": (
        SCALE,
        ("track 0: skipped 4 data bytes with no status byte before them",),
    ),
    "corrupted/data_byte_over_127.mid": (
        [(0, 60, 0, 96)],
        ("2 data bytes above 127 in channel messages clipped to 127",),
    ),
    "corrupted/undefined_status.mid": (
        SCALE,
        ("track 0: skipped 2 system messages that do not belong in a file",),
    ),
    "corrupted/bad_delta.mid": (
        [(0, 60, 0, 96)],
        ("track 0: a delta time longer than 4 bytes; the rest of the track is dropped",),
    ),
    "edge_cases/header_only.mid": ([], ()),
    "edge_cases/no_notes.mid": ([], ()),
    "edge_cases/division_zero.mid": (SCALE, ("division is 0 ticks per beat; assumed 480",)),
    "edge_cases/unclosed_notes.mid": (
        [(0, 60, 0, 192), (0, 64, 0, 96)],
        ("track 0: 1 note-ons without note-off closed at the track end",),
    ),
    "edge_cases/orphan_note_offs.mid": (
        [(0, 62, 0, 96)],
        ("track 0: 2 note-offs without a note-on dropped",),
    ),
    "edge_cases/overlapping_same_pitch.mid": (
        [(0, 60, 0, 48), (0, 60, 48, 48)],
        (
            "track 0: 1 notes cut where the same pitch starts again",
            "track 0: 1 note-offs without a note-on dropped",
        ),
    ),
    "edge_cases/zero_length_notes.mid": ([(0, 42, 0, 0), (0, 42, 96, 0)], ()),
    "edge_cases/off_on_same_tick.mid": ([(0, 60, 0, 96), (0, 60, 96, 96)], ()),
    "edge_cases/tempo_extremes.mid": (SCALE, ("2 tempos outside 1..1000 bpm clamped into that range",)),
    "edge_cases/huge_delta.mid": ([(0, 60, 0, 96)], ("dropped 2 events later than 65536 beats",)),
    "edge_cases/unknown_chunk.mid": (SCALE, ("skipped a 'XFIH' chunk of 11 bytes",)),
    "edge_cases/leading_junk.mid": (SCALE, ("skipped 128 bytes before the MThd header",)),
    "edge_cases/many_meta_and_sysex.mid": (SCALE, ()),
    "single_track/c_major_scale.mid": (SCALE, ()),
    "single_track/running_status.mid": ([(0, 60, 0, 96), (0, 62, 96, 96), (0, 64, 192, 96)], ()),
    "single_track/karaoke.kar": (SCALE, ()),
    "single_track/wrapped.rmi": (SCALE, ()),
    "multitrack/type2_sequence.mid": ([(0, 60, 0, 96), (1, 64, 192, 96)], ()),
}


def note_tuples(score) -> list[tuple[int, int, int, int]]:  # type: ignore[no-untyped-def]
    columns = (score.track, score.pitch, score.onset, score.duration)
    return [tuple(int(v) for v in row) for row in zip(*columns, strict=True)]  # type: ignore[misc]


def load_generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES / "make_fixtures.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_fixtures_match_the_generator():
    built = load_generator().build()
    on_disk = {
        p.relative_to(FIXTURES).as_posix(): p.read_bytes()
        for p in FIXTURES.rglob("*")
        if p.is_file() and p.parent != FIXTURES
    }
    assert on_disk == built
    assert set(REJECTED) | set(READ) <= set(built)
    assert any(not name.isascii() for name in built), "one fixture must have a non-ASCII file name"


@pytest.mark.parametrize("relative", sorted(REJECTED), ids=lambda r: r.split("/")[-1])
def test_unreadable_fixtures_raise_midi_error_naming_file_and_reason(relative):
    path = FIXTURES / relative
    with pytest.raises(MidiError) as error:
        read_midi(path)
    assert str(error.value) == f"{path}: {REJECTED[relative]}" or str(error.value).startswith(
        f"{path}: {REJECTED[relative]}"
    )
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("relative", sorted(READ), ids=lambda r: r.split("/")[-1])
def test_fixtures_read_with_the_documented_notes_and_repairs(relative):
    notes, repairs = READ[relative]
    score = read_midi(FIXTURES / relative)
    assert note_tuples(score) == notes
    assert score.repairs == repairs


def test_smpte_division_becomes_ticks_per_beat_at_120_bpm():
    score = read_midi(FIXTURES / "single_track" / "smpte_25fps.mid")
    # 25 fps x 40 ticks per frame = 1000 ticks per second = 500 ticks per beat at 120 bpm
    assert score.ticks_per_beat == 500
    assert score.tempos.bpm.tolist() == [120.0]
    assert note_tuples(score) == [(0, p, 40 * i, 40) for i, (_, p, _, _) in enumerate(SCALE)]
    assert "SMPTE time base (25 fps x 40 ticks per frame)" in score.repairs[0]


def test_odd_smpte_tick_rates_double_the_ticks():
    data = (FIXTURES / "single_track" / "smpte_25fps.mid").read_bytes()
    odd = data[:12] + bytes((0xE7, 0x01)) + data[14:]  # 25 fps x 1 tick per frame: 12.5 ticks per beat
    score = read_midi_bytes(odd)
    assert score.ticks_per_beat == 25
    assert score.onset[1] == 80 and score.duration[0] == 80


def test_drop_frame_smpte_keeps_real_time():
    data = (FIXTURES / "single_track" / "smpte_25fps.mid").read_bytes()
    score = read_midi_bytes(data[:12] + bytes((0xE3, 0x02)) + data[14:])  # 29.97 fps x 2
    assert score.ticks_per_beat == 30
    assert score.tempos.bpm[0] == pytest.approx(120 * 29.97 / 30)


def test_a_non_ascii_file_name_reads_and_keeps_its_unicode_track_name():
    path = FIXTURES / "single_track" / "mélodie_旋律.mid"
    score = read_midi(path)
    assert score.track_names == ("Mélodie 旋律",)
    assert score.n_notes == 8 and score.ticks_per_beat == 480


def test_voices_on_one_channel_stay_separate_tracks():
    score = read_midi(FIXTURES / "multitrack" / "satb_one_channel.mid")
    assert score.track_names == ("Soprano", "Alto", "Tenor", "Bass")
    # alto and tenor both sound pitch 60 from tick 0, with different lengths
    assert note_tuples(score) == [(0, 67, 0, 960), (1, 60, 0, 480), (2, 60, 0, 960), (3, 48, 0, 960)]
    assert score.key_signatures.sharps.tolist() == [-2] and score.key_signatures.minor.tolist() == [True]
    assert score.time_signatures.numerator.tolist() == [3]
    assert score.tempos.bpm[0] == pytest.approx(90, rel=1e-6)


def test_type_0_splits_by_channel_with_programs_and_drums():
    score = read_midi(FIXTURES / "multitrack" / "type0_multichannel.mid")
    assert score.track_names == ("Band (channel 1)", "Band (channel 2)", "Band (channel 10)")
    assert score.program.tolist() == [0, 33, 0]
    assert score.is_drum.tolist() == [False, False, True]
    assert score.pitch.tolist() == [72, 40, 36]


def test_type_2_tracks_play_one_after_another():
    score = read_midi(FIXTURES / "multitrack" / "type2_sequence.mid")
    assert score.track_names == ("First", "Second")
    # the second track's tempo moves with it
    assert score.tempos.ticks.tolist() == [192] and score.tempos.bpm.tolist() == [60.0]


def test_maps_merge_tracks_sort_and_keep_the_last_change_at_a_tick():
    score = read_midi(FIXTURES / "multitrack" / "tempo_and_signatures.mid")
    assert score.tempos.ticks.tolist() == [0, 384] and score.tempos.bpm.tolist() == [120.0, 100.0]
    ts = score.time_signatures
    assert list(zip(ts.ticks.tolist(), ts.numerator.tolist(), ts.denominator.tolist(), strict=True)) == [
        (0, 4, 4),
        (384, 3, 4),
        (672, 6, 8),
    ]
    ks = score.key_signatures
    assert list(zip(ks.ticks.tolist(), ks.sharps.tolist(), ks.minor.tolist(), strict=True)) == [
        (0, -3, True),
        (672, 2, False),
    ]


def test_the_sustain_pedal_holds_notes_only_when_asked():
    path = FIXTURES / "single_track" / "sustain_pedal.mid"
    plain = read_midi(path)
    pedal = read_midi(path, sustain_pedal=True)
    assert note_tuples(plain) == [(0, 60, 0, 96), (0, 64, 96, 96), (0, 60, 288, 48), (0, 67, 384, 96)]
    # 60 is held until it sounds again at 288, 64 and the second 60 until the pedal lifts at 384,
    # 67 starts after the pedal and keeps its length
    assert note_tuples(pedal) == [(0, 60, 0, 288), (0, 64, 96, 288), (0, 60, 288, 96), (0, 67, 384, 96)]
    assert pedal.repairs == plain.repairs == ()


def test_a_pedal_never_released_holds_notes_to_the_track_end():
    data = (FIXTURES / "single_track" / "sustain_pedal.mid").read_bytes()
    up = bytes((0xB0, 64, 0))
    score = read_midi_bytes(data.replace(up, bytes((0xB0, 64, 100))), sustain_pedal=True)
    assert score.offset.tolist() == [288, 480, 480, 480]


def test_errors_name_the_source():
    with pytest.raises(MidiError, match=r"^piece\.mid: not a MIDI file"):
        read_midi_bytes(b"RIFX....", "piece.mid")
    with pytest.raises(MidiError, match=r"^<bytes>: empty file"):
        read_midi_bytes(b"")


def test_missing_files_and_folders_raise_midi_error(tmp_path):
    with pytest.raises(MidiError, match="missing.mid: cannot read the file"):
        read_midi(tmp_path / "missing.mid")
    with pytest.raises(MidiError, match="cannot read the file"):
        read_midi(tmp_path)


def test_files_over_the_size_limit_are_refused_before_reading(tmp_path, monkeypatch):
    import aurl.midi.read as read_module

    monkeypatch.setattr(read_module, "MAX_FILE_BYTES", 1000)
    path = tmp_path / "big.mid"
    path.write_bytes((FIXTURES / "single_track" / "c_major_scale.mid").read_bytes() + bytes(2000))
    with pytest.raises(MidiError, match="over the 1000 byte limit"):
        read_midi(path)


def test_riff_files_that_are_not_rmid_are_rejected():
    with pytest.raises(MidiError, match="not RMID"):
        read_midi_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt ", "x.wav")
    with pytest.raises(MidiError, match="without a 'data' chunk"):
        read_midi_bytes(b"RIFF\x04\x00\x00\x00RMID", "x.rmi")


def test_repairs_over_many_tracks_are_summed_up():
    gen = load_generator()
    body = gen.events((0, gen.on(0, 60)), (96, gen.off(0, 60)))  # no end-of-track in any track
    score = read_midi_bytes(gen.smf(1, 96, *[body] * 20))
    assert score.repairs == ("20 tracks (0, 1, 2, 3, 4, 5, 6, 7 and more): no end-of-track event",)
    assert score.n_tracks == 20 and np.all(score.duration == 96)
