"""Write a Score as a type-1 Standard MIDI File that read_midi reads back to the same notes.

Layout: track 0 is the conductor (tempo map, time and key signatures, an optional text event);
then one track per Score track, named after it, with a program change and its notes. Drums play on
channel 10 (index 9); pitched tracks take channels 1..9 and 11..16 in turn (more than 15 pitched
tracks share channels; every track carries its own program change, and read_midi keys notes by
track and channel, so nothing is lost in our own round trip).

So that reading back gives exactly the same notes, a Score track whose notes do not fit one MIDI
track is split into several, all under its name: notes of another program or drum flag go to their
own track, and so do same-pitch notes that overlap or start together (MIDI cannot tell those apart
on one channel). Note events are encoded with numpy; the file is written atomically.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np

from aurl.atomic import write_bytes
from aurl.errors import MidiError
from aurl.midi.score import Score
from aurl.midi.validate import validate

DRUM_CHANNEL = 9
PITCHED_CHANNELS = tuple(c for c in range(16) if c != DRUM_CHANNEL)
MAX_DELTA = 0x0FFFFFFF  # the largest 4-byte variable-length quantity
_FILLER = (0xFF, 0x01, 0x00)  # an empty text event: splits a time gap too long for one delta


def write_midi(score: Score, path: str | os.PathLike[str], *, text: str | None = None) -> None:
    """Write `score` to `path` as a type-1 MIDI file, atomically (a temporary file, fsync, rename).

    Args:
        score: the music; must pass `validate` (pitches, velocities and programs in MIDI range...).
        path: the file to write; an existing file is replaced only once the new one is complete.
        text: optional text stored as a text meta event in the conductor track (e.g. sampling settings).

    Raises:
        MidiError: the score cannot be written as MIDI, or the file cannot be written.
    """
    path = Path(path)
    data = _encode(score, text, str(path))
    try:
        write_bytes(path, data)
    except OSError as error:
        raise MidiError(f"{path}: cannot write the file ({error.strerror or error})") from None


def midi_bytes(score: Score, text: str | None = None) -> bytes:
    """The bytes `write_midi` would write for `score` (see there)."""
    return _encode(score, text, "<score>")


def _encode(score: Score, text: str | None, name: str) -> bytes:
    problems = validate(score)
    if problems:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise MidiError(f"{name}: cannot write this score as MIDI: {problems[0]}{more}")
    tracks = [_conductor(score, text)]
    channels = itertools.cycle(PITCHED_CHANNELS)
    for layer in _layers(score):
        drum = bool(score.is_drum[layer[0]])
        channel = DRUM_CHANNEL if drum else next(channels)
        tracks.append(_note_track(score, layer, channel))
    if len(tracks) > 0xFFFF:
        raise MidiError(f"{name}: {len(tracks)} MIDI tracks needed, more than the 65535 a file holds")
    header = (
        b"MThd"
        + (6).to_bytes(4, "big")
        + b"".join(v.to_bytes(2, "big") for v in (1, len(tracks), score.ticks_per_beat))
    )
    return header + b"".join(b"MTrk" + len(t).to_bytes(4, "big") + t for t in tracks)


def _layers(score: Score) -> list[np.ndarray]:
    """Note indices per MIDI track: a Score track's notes (split by drum flag), split where needed."""
    order = np.lexsort((score.duration, score.onset, score.pitch, score.is_drum, score.track))
    group = score.track[order].astype(np.int64) * 2 + score.is_drum[order]
    starts = np.flatnonzero(group[1:] != group[:-1]) + 1
    layers = []
    for members in np.split(order, starts) if len(order) else []:
        for part in _split_programs(score, members):
            layers.extend(_split_clashes(score, part))
    return layers


def _split_programs(score: Score, members: np.ndarray) -> list[np.ndarray]:
    """One part, or one per program when notes of different programs start together (a channel has
    one program at a time; elsewhere program changes between notes carry the changes)."""
    onset, program = score.onset[members], score.program[members]
    by_onset = np.lexsort((program, onset))
    o, p = onset[by_onset], program[by_onset]
    if not np.any((o[1:] == o[:-1]) & (p[1:] != p[:-1])):
        return [members]
    return [members[program == value] for value in np.unique(program)]


def _split_clashes(score: Score, members: np.ndarray) -> list[np.ndarray]:
    """Split notes sorted by (pitch, onset, duration) into layers where no same-pitch notes overlap.

    Touching notes are fine, and so are zero-length notes at the onset of another.
    """
    pitch, onset, offset = score.pitch[members], score.onset[members], score.offset[members]
    clash = (pitch[1:] == pitch[:-1]) & (onset[1:] < offset[:-1])
    if not clash.any():
        return [members]
    # Rare: greedy interval colouring, pitch by pitch, in onset order.
    layer_of = np.zeros(len(members), np.int64)
    ends: dict[int, list[int]] = {}  # pitch -> the last offset in each layer
    for k, (p, on, off) in enumerate(zip(pitch.tolist(), onset.tolist(), offset.tolist(), strict=True)):
        lanes = ends.setdefault(p, [])
        lane = next((i for i, end in enumerate(lanes) if on >= end), len(lanes))
        if lane == len(lanes):
            lanes.append(off)
        else:
            lanes[lane] = off
        layer_of[k] = lane
    return [members[layer_of == lane] for lane in range(int(layer_of.max()) + 1)]


def _note_track(score: Score, notes: np.ndarray, channel: int) -> bytes:
    """One MTrk body for notes sorted by (pitch, onset, duration): name, programs, notes, end of track."""
    name = score.track_names[int(score.track[notes[0]])].encode("utf-8")
    head = b"\x00" + _meta(0x03, name)
    n = len(notes)
    pitch, onset, offset = score.pitch[notes], score.onset[notes], score.offset[notes]
    change_ticks, programs = _program_changes(score.program[notes], onset)
    ticks = np.concatenate([offset, change_ticks, onset])
    # At one tick: note-offs of notes sounding before it, program changes, then note-ons in (pitch,
    # onset, duration) order, a zero-length note's off right after its on: read.py pairs exactly so.
    zero = offset == onset
    index = np.arange(n)
    rank = np.concatenate([np.where(zero, 2, 0), np.ones(len(change_ticks), np.int64), np.full(n, 2)])
    sequence = np.concatenate([2 * index + 1, np.zeros(len(change_ticks), np.int64), 2 * index])
    messages = np.zeros((len(ticks), 3), np.uint8)
    messages[:, 0] = np.concatenate([np.full(n, 0x80), np.full(len(programs), 0xC0), np.full(n, 0x90)])
    messages[:, 0] |= channel
    messages[:, 1] = np.concatenate([pitch, programs, pitch])
    messages[:, 2] = np.concatenate([np.zeros(n), np.zeros(len(programs)), score.velocity[notes]])
    sizes = np.where(messages[:, 0] >> 4 == 0xC, 2, 3)
    order = np.lexsort((sequence, rank, ticks))
    return head + _encode_events(ticks[order], messages[order], sizes[order]) + b"\x00\xff\x2f\x00"


def _program_changes(program: np.ndarray, onset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ticks, programs) of the program changes a track needs: one at tick 0, then one wherever the
    program differs from that of the note before (in onset order)."""
    by_onset = np.argsort(onset, kind="stable")
    p, t = program[by_onset], onset[by_onset]
    change = np.flatnonzero(p[1:] != p[:-1]) + 1
    return np.r_[0, t[change]].astype(np.int64), np.r_[p[0], p[change]].astype(np.uint8)


def _encode_events(ticks: np.ndarray, messages: np.ndarray, sizes: np.ndarray) -> bytes:
    """Delta-time-prefixed messages: (E, 3) uint8 of which the first `sizes` (E,) bytes are used,
    at absolute `ticks` (E,), sorted."""
    if len(ticks) == 0:
        return b""
    deltas = np.diff(ticks, prepend=0)
    if deltas.max() > MAX_DELTA:
        ticks, messages, sizes = _with_fillers(ticks, messages, sizes)
        deltas = np.diff(ticks, prepend=0)
    size = 1 + (deltas >= 1 << 7) + (deltas >= 1 << 14) + (deltas >= 1 << 21)
    table = np.empty((len(deltas), 7), np.uint8)
    for column, shift in enumerate((21, 14, 7)):
        table[:, column] = ((deltas >> shift) & 0x7F) | 0x80
    table[:, 3] = deltas & 0x7F
    table[:, 4:] = messages
    used = np.empty((len(deltas), 7), bool)
    used[:, :4] = np.arange(4) >= (4 - size)[:, None]
    used[:, 4:] = np.arange(3) < sizes[:, None]
    return table[used].tobytes()


def _with_fillers(ticks: np.ndarray, messages: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, ...]:
    """Insert empty text events so that no delta exceeds MAX_DELTA (only for gaps of > 2**28 ticks)."""
    out_ticks, out_messages, out_sizes, previous = [], [], [], 0
    for tick, message, size in zip(ticks.tolist(), messages.tolist(), sizes.tolist(), strict=True):
        while tick - previous > MAX_DELTA:
            previous += MAX_DELTA
            out_ticks.append(previous)
            out_messages.append(_FILLER)
            out_sizes.append(3)
        out_ticks.append(tick)
        out_messages.append(message)
        out_sizes.append(size)
        previous = tick
    return np.asarray(out_ticks, np.int64), np.asarray(out_messages, np.uint8), np.asarray(out_sizes)


def _conductor(score: Score, text: str | None) -> bytes:
    """Track 0: text, tempo map, time and key signatures, each at its tick."""
    events: list[tuple[int, int, bytes]] = []  # (tick, order at that tick, event bytes)
    if text is not None:
        events.append((0, 0, _meta(0x01, text.encode("utf-8"))))
    for tick, bpm in zip(score.tempos.ticks.tolist(), score.tempos.bpm.tolist(), strict=True):
        microseconds = min(max(round(60_000_000 / bpm), 1), 0xFFFFFF)
        events.append((tick, 1, _meta(0x51, microseconds.to_bytes(3, "big"))))
    ts = score.time_signatures
    for tick, numerator, denominator in zip(
        ts.ticks.tolist(), ts.numerator.tolist(), ts.denominator.tolist(), strict=True
    ):
        events.append((tick, 2, _meta(0x58, bytes((numerator, denominator.bit_length() - 1, 24, 8)))))
    ks = score.key_signatures
    for tick, sharps, minor in zip(ks.ticks.tolist(), ks.sharps.tolist(), ks.minor.tolist(), strict=True):
        events.append((tick, 3, _meta(0x59, bytes((sharps & 0xFF, int(minor))))))
    events.sort(key=lambda e: (e[0], e[1]))
    body, previous = bytearray(), 0
    for tick, _, event in events:
        while tick - previous > MAX_DELTA:
            previous += MAX_DELTA
            body += _varlen(MAX_DELTA) + bytes(_FILLER)
        body += _varlen(tick - previous) + event
        previous = tick
    return bytes(body) + b"\x00\xff\x2f\x00"


def _meta(kind: int, payload: bytes) -> bytes:
    return bytes((0xFF, kind)) + _varlen(len(payload)) + payload


def _varlen(value: int) -> bytes:
    """A MIDI variable-length quantity (7 bits per byte, high bit set on all but the last)."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    return bytes(reversed(out))
