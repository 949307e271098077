"""From raw channel events to a Score: note pairing, the sustain pedal, programs and tracks, vectorised.

read.py hands over flat columns (one entry per channel event, in file order per track); everything
here is numpy over whole files, so its cost barely grows with the number of notes. The repair rules:

- A note-on with velocity 0 is a note-off.
- Notes are paired per (file track, channel, pitch) in time order. At one tick, a note-off first ends
  a note sounding from before (so an off and an on at one tick, in either order, end the old note
  and start a new one); otherwise events pair in file order (an on then an off at one tick with
  nothing sounding before is a zero-length note), as pretty_midi does.
- A note-on while the same pitch sounds in the same track and channel ends the sounding note there.
- A note-on never ended is closed at the end of its track; a note-off with nothing to end is dropped.
- Events later than MAX_BEATS beats are dropped, so that no later stage sizes anything by an absurd
  time (maps.py clamps tempos into 1..1000 bpm).
- Tracks of a type-2 file play one after the other; each starts where the previous one ends.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aurl.midi.maps import Metas, build_maps, track_names
from aurl.midi.score import Score

MAX_BEATS = 1 << 16  # events past this many beats are dropped
MAX_SCORE_TRACKS = 0x7FFF  # Score.track is int16
_LINES_PER_KIND = 8  # repair lines per kind of repair before the rest is summed up in one line
_NO_TICK = np.iinfo(np.int64).max


class Unreadable(Exception):
    """Internal: the file cannot become a Score; the message is the reason (read_midi_bytes turns it
    into MidiError with the file name in front)."""


@dataclass
class RawMidi:
    """The channel events and meta events of a file, as read.py collects them.

    Attributes:
        ticks_per_beat: the time base (already converted from SMPTE or 0 where needed).
        format: the MIDI file type, 0, 1 or 2.
        tick, status, data1, data2, track: (E,) one entry per channel event (note on/off,
            controller, program change), in file order within each track; data bytes are 0..127.
        track_end: (T,) the tick of each track's last event or end-of-track.
        metas: per track, (tick, meta type, payload) of tempo, signature and name events.
        fixed_bpm: the only tempo for SMPTE files (their tempo events are ignored), else None.
        repairs: repair lines so far; build_score adds its own.
    """

    ticks_per_beat: int
    format: int
    tick: np.ndarray
    status: np.ndarray
    data1: np.ndarray
    data2: np.ndarray
    track: np.ndarray
    track_end: np.ndarray
    metas: Metas
    fixed_bpm: float | None
    repairs: list[str]


@dataclass
class _Notes:
    """Paired notes, still in pairing order, with the file track and channel they came from."""

    onset: np.ndarray
    offset: np.ndarray
    pitch: np.ndarray
    velocity: np.ndarray
    track: np.ndarray
    channel: np.ndarray
    next_onset: np.ndarray  # onset of the next note of the same track, channel and pitch (or _NO_TICK)


def build_score(raw: RawMidi, *, sustain_pedal: bool = False) -> Score:
    """Pair notes, apply the options and repairs, and assemble the Score (notes in canonical order)."""
    repairs = raw.repairs
    tpq = raw.ticks_per_beat
    offsets = _track_offsets(raw)
    tick = raw.tick + offsets[raw.track]
    track_end = raw.track_end + offsets
    keep, track_end = _cap(tick, track_end, tpq, repairs)
    tick, status, data1, data2, track = (a[keep] for a in (tick, raw.status, raw.data1, raw.data2, raw.track))
    kind, channel = status >> 4, status & 0x0F
    notes = _pair(tick, track, channel, data1, data2, kind, track_end, repairs)
    if sustain_pedal:
        pedal = (kind == 0xB) & (data1 == 64)
        _sustain(notes, tick[pedal], channel[pedal], data2[pedal] >= 64, track_end)
    change = kind == 0xC
    program = _programs(notes, tick[change], track[change], channel[change], data1[change])
    metas = _shift_metas(raw.metas, offsets, MAX_BEATS * tpq)
    return _assemble(raw, notes, program, metas, repairs)


def _track_offsets(raw: RawMidi) -> np.ndarray:
    """(T,) ticks added to each track: the summed lengths of the tracks before it in type-2 files."""
    if raw.format != 2 or len(raw.track_end) == 0:
        return np.zeros(len(raw.track_end), np.int64)
    return np.concatenate(([0], np.cumsum(raw.track_end)[:-1])).astype(np.int64)


def _cap(
    tick: np.ndarray, track_end: np.ndarray, tpq: int, repairs: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Mask of the events within MAX_BEATS beats, and the track ends capped there."""
    cap = MAX_BEATS * tpq
    keep = tick <= cap
    dropped = len(tick) - int(np.count_nonzero(keep))
    if dropped:
        repairs.append(f"dropped {dropped} events later than {MAX_BEATS} beats")
    return keep, np.minimum(track_end, cap)


def _shift_metas(metas: Metas, offsets: np.ndarray, cap: int) -> Metas:
    """Meta events moved by their track's type-2 offset, those past the tick cap dropped."""
    shifted = []
    for track_metas, offset in zip(metas, offsets.tolist(), strict=True):
        shifted.append(
            [(tick + offset, kind, payload) for tick, kind, payload in track_metas if tick + offset <= cap]
        )
    return shifted


def _pair(
    tick: np.ndarray,
    track: np.ndarray,
    channel: np.ndarray,
    data1: np.ndarray,
    data2: np.ndarray,
    kind: np.ndarray,
    track_end: np.ndarray,
    repairs: list[str],
) -> _Notes:
    """Pair note-ons with what ends them (see the module docstring for the rules).

    Args:
        tick, track, channel, data1, data2, kind: (E,) the channel events; kind is the status high nibble.
        track_end: (T,) each file track's end in ticks, where unended notes stop.
        repairs: gets a line per file track for each kind of repair made.
    """
    is_note = (kind == 8) | (kind == 9)
    tick, track, channel, pitch, velocity = (a[is_note] for a in (tick, track, channel, data1, data2))
    is_on = (kind[is_note] == 9) & (velocity > 0)
    group = (track * 16 + channel) * 128 + pitch
    order = _pairing_order(tick, group, is_on)
    g, t, on = group[order], tick[order], is_on[order]
    n = len(order)
    same_next = np.zeros(n, bool)
    same_next[:-1] = g[1:] == g[:-1]
    first = np.flatnonzero(on)  # where the note-ons sit in pairing order
    after = np.minimum(first + 1, max(n - 1, 0))  # the event after each: what ends it
    closed = same_next[first]
    by_onset = closed & on[after]
    ons = order[first]
    offset = np.where(closed, t[after], track_end[track[ons]])
    ended = np.zeros(n, bool)
    ended[after[closed & ~by_onset]] = True
    n_tracks = len(track_end)
    _count_repairs(track[ons[by_onset]], n_tracks, "notes cut where the same pitch starts again", repairs)
    _count_repairs(
        track[ons[~closed]], n_tracks, "note-ons without note-off closed at the track end", repairs
    )
    _count_repairs(track[order[~on & ~ended]], n_tracks, "note-offs without a note-on dropped", repairs)
    next_onset = np.full(len(first), _NO_TICK, np.int64)
    same_group = g[first][1:] == g[first][:-1]
    next_onset[:-1] = np.where(same_group, t[first][1:], _NO_TICK)
    return _Notes(tick[ons], offset, pitch[ons], velocity[ons], track[ons], channel[ons], next_onset)


def _pairing_order(tick: np.ndarray, group: np.ndarray, is_on: np.ndarray) -> np.ndarray:
    """Indices ordering note events for pairing: by group and tick, then as pretty_midi would match.

    Within one tick of one group, events keep their file order, except that when a note is still
    sounding from an earlier tick, the first note-off of the tick moves to the front to end it. Each
    note-on then ends at the next event of its group. Whether a note sounds into a tick depends on
    the ticks before, a recurrence that reduces to a forward fill: a tick whose events end with a
    note-on passes a sounding note on, one ending with a note-off passes none, except a tick whose
    only note-off comes last after note-ons, which passes on what came into it (ON..OFF is then a
    zero-length note, or OFF..ON a new note after the old one ended).
    """
    order = np.argsort((group << 34) | tick, kind="stable")  # group < 2**27, tick < 2**32
    n = len(order)
    g, t, on = group[order], tick[order], is_on[order]
    new_block = (g[1:] != g[:-1]) | (t[1:] != t[:-1])
    # Only an off written after an on of its tick can need moving; most files have none.
    if n < 2 or not np.any(~new_block & on[:-1] & ~on[1:]):
        return order
    starts = np.concatenate(([0], np.flatnonzero(new_block) + 1))
    block = np.cumsum(np.concatenate(([0], new_block)))
    n_off = np.add.reduceat((~on).astype(np.int64), starts)
    last = np.concatenate((starts[1:], [n])) - 1
    passes_through = ~on[last] & (n_off == 1) & (last > starts)
    latest = np.maximum.accumulate(np.where(passes_through, -1, np.arange(len(starts))))
    before = np.concatenate(([-1], latest[:-1]))
    safe = np.maximum(before, 0)
    block_group = g[starts]
    carried = (before >= 0) & (block_group[safe] == block_group) & on[last[safe]]
    offs = np.flatnonzero(~on)
    first_offs = offs[np.concatenate(([True], block[offs][1:] != block[offs][:-1]))]
    move = first_offs[carried[block[first_offs]] & (first_offs != starts[block[first_offs]])]
    if len(move) == 0:
        return order
    rank = np.ones(n, np.int64)
    rank[move] = 0
    return order[np.lexsort((rank, block))]


def _sustain(
    notes: _Notes, tick: np.ndarray, channel: np.ndarray, down: np.ndarray, track_end: np.ndarray
) -> None:
    """Extend notes released under a held sustain pedal to its release or the next onset of the pitch.

    The pedal is a channel's, as in MIDI: CC64 events (K,) at `tick` on `channel`, `down` when >= 64,
    from any track. A pedal never lifted holds notes to the end of their track.
    """
    if len(tick) == 0 or len(notes.onset) == 0:
        return
    key = (channel << 40) | tick
    order = np.argsort(key, kind="stable")
    key, down = key[order], down[order]
    last = np.searchsorted(key, (notes.channel << 40) | notes.offset, side="right") - 1
    safe = np.maximum(last, 0)
    held = (last >= 0) & ((key[safe] >> 40) == notes.channel) & down[safe]
    if not held.any():
        return
    release = track_end[notes.track]
    ups = np.flatnonzero(~down)  # pedal releases, in (channel, tick) order
    if len(ups):
        following = np.searchsorted(ups, last, side="right")
        up = ups[np.minimum(following, len(ups) - 1)]
        found = (following < len(ups)) & ((key[up] >> 40) == notes.channel)
        release = np.where(found, key[up] & ((1 << 40) - 1), release)
    extended = np.maximum(notes.offset, np.minimum(release, notes.next_onset))
    notes.offset = np.where(held, extended, notes.offset)


def _programs(
    notes: _Notes, tick: np.ndarray, track: np.ndarray, channel: np.ndarray, program: np.ndarray
) -> np.ndarray:
    """(N,) each note's program: the last program change at or before its onset on its file track and
    channel, else on its channel in any track, else 0."""
    result = np.zeros(len(notes.onset), np.int64)
    if len(tick) == 0:
        return result
    found = np.zeros(len(notes.onset), bool)
    for event_key, note_key in (
        (track * 16 + channel, notes.track * 16 + notes.channel),
        (channel, notes.channel),
    ):
        keys = (event_key << 34) | tick
        order = np.argsort(keys, kind="stable")  # stable: of changes at one tick, the last written wins
        keys = keys[order]
        last = np.searchsorted(keys, (note_key << 34) | notes.onset, side="right") - 1
        safe = np.maximum(last, 0)
        hit = (last >= 0) & ((keys[safe] >> 34) == note_key) & ~found
        result[hit] = program[order[safe[hit]]]
        found |= hit
        if found.all():
            break
    return result


def _count_repairs(track: np.ndarray, n_tracks: int, what: str, repairs: list[str]) -> None:
    """One line per file track with repairs of this kind: 'track 3: 2 <what>' (the rest summed up)."""
    if len(track) == 0:
        return
    counts = np.bincount(track, minlength=n_tracks)
    tracks = np.flatnonzero(counts)
    for t in tracks[:_LINES_PER_KIND]:
        repairs.append(f"track {t}: {counts[t]} {what}")
    if len(tracks) > _LINES_PER_KIND:
        rest = tracks[_LINES_PER_KIND:]
        repairs.append(f"{len(rest)} more tracks: {int(counts[rest].sum())} {what}")


def _assemble(raw: RawMidi, notes: _Notes, program: np.ndarray, metas: Metas, repairs: list[str]) -> Score:
    """The Score: one track per (file track, channel) with notes, notes in Score.sorted() order."""
    group = notes.track * 16 + notes.channel
    groups, index = np.unique(group, return_inverse=True)
    if len(groups) > MAX_SCORE_TRACKS:
        raise Unreadable(f"{len(groups)} instrument tracks, more than the {MAX_SCORE_TRACKS} a Score holds")
    names = track_names(groups, metas)
    duration = notes.offset - notes.onset
    order = np.lexsort((duration, notes.pitch, index, notes.onset))  # Score.sorted() order
    tempos, time_signatures, key_signatures = build_maps(metas, raw.fixed_bpm, repairs)
    return Score(
        raw.ticks_per_beat,
        pitch=notes.pitch[order],
        onset=notes.onset[order],
        duration=duration[order],
        velocity=notes.velocity[order],
        program=program[order],
        is_drum=notes.channel[order] == 9,
        track=index.reshape(-1)[order],
        tempos=tempos,
        time_signatures=time_signatures,
        key_signatures=key_signatures,
        track_names=names,
        repairs=_compact(repairs),
    )


def _compact(repairs: list[str]) -> tuple[str, ...]:
    """The repair lines, where one 'track N: <what>' repeated over many tracks is summed up in one line."""
    tracks_by_text: dict[str, list[str]] = {}
    for line in repairs:
        head, sep, text = line.partition(": ")
        if sep and head.startswith("track ") and head[6:].isdigit():
            tracks_by_text.setdefault(text, []).append(head[6:])
    lines = []
    for line in repairs:
        head, _, text = line.partition(": ")
        tracks = tracks_by_text.get(text, [])
        if len(tracks) <= _LINES_PER_KIND:
            lines.append(line)
        elif head == f"track {tracks[0]}":
            shown = ", ".join(tracks[:_LINES_PER_KIND])
            lines.append(f"{len(tracks)} tracks ({shown} and more): {text}")
    return tuple(lines)
