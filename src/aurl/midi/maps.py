"""Meta events -> the Score's tempo, time- and key-signature maps and its track names.

Maps merge the meta events of all tracks (a conductor track or not), sorted by tick; at one tick the
last event wins (later tracks, then later in the file), and a change that repeats the value before it
is dropped. Malformed events are ignored and recorded as repairs; tempos outside 1..1000 bpm are
clamped into that range.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from aurl.midi.events import (
    META_INSTRUMENT,
    META_KEY_SIGNATURE,
    META_TEMPO,
    META_TIME_SIGNATURE,
    META_TRACK_NAME,
)
from aurl.midi.score import KeySignatureMap, TempoMap, TimeSignatureMap

TEMPO_RANGE_BPM = (1.0, 1000.0)
MAX_NAME_CHARS = 256
MAX_LINES = 8  # malformed-event repair lines before the rest is summed up

Metas = list[list[tuple[int, int, bytes]]]  # per track: (tick, meta type, payload)
Change = tuple[int, tuple[Any, ...]]  # (tick, value)


def build_maps(
    metas: Metas, fixed_bpm: float | None, repairs: list[str]
) -> tuple[TempoMap, TimeSignatureMap, KeySignatureMap]:
    """The three maps from every track's meta events; `fixed_bpm` (SMPTE files) replaces all tempos."""
    events = sorted(
        ((tick, track, kind, payload) for track, m in enumerate(metas) for tick, kind, payload in m),
        key=lambda e: e[0],  # stable: at one tick, later tracks and later events stay later
    )
    changes: dict[int, list[Change]] = {kind: [] for kind in _PARSERS}
    bad: list[str] = []
    for tick, track, kind, payload in events:
        if kind in _PARSERS:
            parse, what = _PARSERS[kind]
            value = parse(payload)
            if value is None:
                bad.append(f"track {track}: malformed {what} event at tick {tick} ignored")
            else:
                changes[kind].append((tick, value))
    repairs.extend(bad[:MAX_LINES])
    if len(bad) > MAX_LINES:
        repairs.append(f"{len(bad) - MAX_LINES} more malformed meta events ignored")
    tempo = _clamp_tempos(changes[META_TEMPO], repairs) if fixed_bpm is None else [(0, (fixed_bpm,))]
    return (
        TempoMap(*_columns(tempo, 1)),
        TimeSignatureMap(*_columns(changes[META_TIME_SIGNATURE], 2)),
        KeySignatureMap(*_columns(changes[META_KEY_SIGNATURE], 2)),
    )


def _tempo(payload: bytes) -> tuple[float] | None:
    if len(payload) < 3:
        return None
    microseconds = int.from_bytes(payload[:3], "big")
    return (60_000_000 / microseconds if microseconds else float("inf"),)


def _time_signature(payload: bytes) -> tuple[int, int] | None:
    if len(payload) < 2 or payload[0] == 0 or payload[1] > 6:
        return None
    return payload[0], 1 << payload[1]


def _key_signature(payload: bytes) -> tuple[int, bool] | None:
    if len(payload) < 2:
        return None
    sharps = payload[0] - 256 if payload[0] > 127 else payload[0]
    if not -7 <= sharps <= 7 or payload[1] > 1:
        return None
    return sharps, bool(payload[1])


_PARSERS: dict[int, tuple[Callable[[bytes], tuple[Any, ...] | None], str]] = {
    META_TEMPO: (_tempo, "tempo"),
    META_TIME_SIGNATURE: (_time_signature, "time signature"),
    META_KEY_SIGNATURE: (_key_signature, "key signature"),
}


def _clamp_tempos(tempo: list[Change], repairs: list[str]) -> list[Change]:
    low, high = TEMPO_RANGE_BPM
    clamped: list[Change] = [(tick, (min(max(bpm, low), high),)) for tick, (bpm,) in tempo]
    n = sum(1 for (_, a), (_, b) in zip(tempo, clamped, strict=True) if a != b)
    if n:
        repairs.append(f"{n} tempos outside {low:g}..{high:g} bpm clamped into that range")
    return clamped


def _columns(changes: list[Change], width: int) -> list[np.ndarray]:
    """(ticks, value columns...) keeping the last change at each tick and dropping repeated values."""
    last_at_tick: dict[int, tuple[Any, ...]] = {}
    for tick, value in changes:
        last_at_tick[tick] = value
    ticks: list[int] = []
    values: list[tuple[Any, ...]] = []
    for tick in sorted(last_at_tick):
        value = last_at_tick[tick]
        if not values or value != values[-1]:
            ticks.append(tick)
            values.append(value)
    return [np.asarray(ticks, np.int64)] + [np.asarray([v[k] for v in values]) for k in range(width)]


def track_names(groups: np.ndarray, metas: Metas) -> tuple[str, ...]:
    """A name per Score track: its file track's name, with the channel when a file track splits."""
    file_tracks = groups // 16
    split = np.bincount(file_tracks) > 1 if len(groups) else np.zeros(0, bool)
    names = []
    for g in groups.tolist():
        t, c = divmod(g, 16)
        base = _file_track_name(metas[t]) or f"Track {t}"
        names.append(f"{base} (channel {c + 1})" if split[t] else base)
    return tuple(names)


def _file_track_name(metas: list[tuple[int, int, bytes]]) -> str:
    found = {
        kind: payload for _, kind, payload in reversed(metas) if kind in (META_TRACK_NAME, META_INSTRUMENT)
    }
    for kind in (META_TRACK_NAME, META_INSTRUMENT):
        name = _decode_text(found.get(kind, b""))
        if name:
            return name
    return ""


def _decode_text(payload: bytes) -> str:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        text = payload.decode("latin-1")  # older files: single-byte code pages; latin-1 never fails
    # One line: NULs, line breaks and runs of spaces (as in "Soprano\rOboe 1,2") become single spaces.
    return " ".join(text.replace("\x00", " ").split())[:MAX_NAME_CHARS]
