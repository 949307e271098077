"""Check a Score against what MIDI can hold, and describe it as JSON-able metadata.

`validate` lists problems (empty when the score is fine; the writer refuses a score with any);
`metadata` gives what a manifest records per file: durations in beats and seconds, the maps,
instruments, note count, polyphony and the reader's repairs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from aurl.midi.repair import MAX_BEATS
from aurl.midi.score import DEFAULT_TEMPO_BPM, Score, TempoMap

MAX_TICKS_PER_BEAT = 0x7FFF  # a MIDI header stores ticks per beat in 15 bits
DENOMINATORS = (1, 2, 4, 8, 16, 32, 64)


def validate(score: Score) -> list[str]:
    """Problems that make `score` unfit to write as MIDI or to tokenise; [] when there are none.

    Zero-length notes and empty scores are not problems. Each problem is one line naming what is
    wrong, how often, and the allowed range.
    """
    problems = []
    if score.ticks_per_beat > MAX_TICKS_PER_BEAT:
        problems.append(
            f"ticks_per_beat {score.ticks_per_beat} is above {MAX_TICKS_PER_BEAT}, the MIDI maximum"
        )
    checks = (
        ((score.pitch < 0) | (score.pitch > 127), "pitch outside 0..127"),
        ((score.velocity < 1) | (score.velocity > 127), "velocity outside 1..127"),
        ((score.program < 0) | (score.program > 127), "program outside 0..127"),
        (score.onset < 0, "a negative onset"),
        (score.duration < 0, "a negative duration"),
        (score.track < 0, "a negative track index"),
        (score.offset > MAX_BEATS * score.ticks_per_beat, f"an end later than {MAX_BEATS} beats"),
    )
    for bad, what in checks:
        count = int(np.count_nonzero(bad))
        if count:
            problems.append(f"{count} notes with {what}")
    problems += _map_problems(score)
    return problems


def _map_problems(score: Score) -> list[str]:
    problems = []
    for name, ticks in (
        ("tempo", score.tempos.ticks),
        ("time signature", score.time_signatures.ticks),
        ("key signature", score.key_signatures.ticks),
    ):
        # Two changes at one tick are allowed: the last one holds (as when reading a file).
        if len(ticks) and (ticks[0] < 0 or np.any(np.diff(ticks) < 0)):
            problems.append(f"{name} map ticks are negative or out of order")
    bpm = score.tempos.bpm
    if np.any(~np.isfinite(bpm) | (bpm <= 0)):
        problems.append("tempo map has a tempo that is not a positive number of bpm")
    ts = score.time_signatures
    if np.any((ts.numerator < 1) | (ts.numerator > 255)):
        problems.append("time signature numerator outside 1..255")
    if np.any(~np.isin(ts.denominator, DENOMINATORS)):
        problems.append(f"time signature denominator not one of {DENOMINATORS}")
    if np.any(np.abs(score.key_signatures.sharps) > 7):
        problems.append("key signature with more than 7 sharps or flats")
    return problems


def metadata(score: Score) -> dict[str, Any]:
    """What a manifest records about a score; every value is plain JSON (ints, floats, str, lists).

    Keys: ticks_per_beat, duration_beats, duration_seconds (through the tempo map, 120 bpm before
    the first tempo), n_notes, n_tracks, max_polyphony (most notes sounding at once; zero-length
    notes excluded), tempos [{tick, bpm}], time_signatures [{tick, numerator, denominator}],
    key_signatures [{tick, sharps, minor}], instruments [{track, name, program, is_drum, n_notes}]
    (program: the track's most used one), repairs [str].
    """
    end = score.end_ticks
    return {
        "ticks_per_beat": int(score.ticks_per_beat),
        "duration_beats": end / score.ticks_per_beat,
        "duration_seconds": float(ticks_to_seconds(np.array([end]), score.tempos, score.ticks_per_beat)[0]),
        "n_notes": score.n_notes,
        "n_tracks": score.n_tracks,
        "max_polyphony": max_polyphony(score),
        "tempos": [
            {"tick": t, "bpm": b} for t, b in zip(*_lists(score.tempos.ticks, score.tempos.bpm), strict=True)
        ],
        "time_signatures": [
            {"tick": t, "numerator": n, "denominator": d}
            for t, n, d in zip(*_lists(*_columns(score.time_signatures)), strict=True)
        ],
        "key_signatures": [
            {"tick": t, "sharps": s, "minor": m}
            for t, s, m in zip(*_lists(*_columns(score.key_signatures)), strict=True)
        ],
        "instruments": _instruments(score),
        "repairs": list(score.repairs),
    }


def ticks_to_seconds(ticks: np.ndarray, tempos: TempoMap, ticks_per_beat: int) -> np.ndarray:
    """(K,) seconds at each of `ticks` (K,), through the tempo map (120 bpm before its first change)."""
    order = np.argsort(tempos.ticks, kind="stable")
    change_ticks, bpm = tempos.ticks[order], tempos.bpm[order]
    if len(change_ticks) == 0 or change_ticks[0] > 0:
        change_ticks = np.r_[0, change_ticks]
        bpm = np.r_[DEFAULT_TEMPO_BPM, bpm]
    seconds_per_tick = 60.0 / (bpm * ticks_per_beat)
    start_seconds = np.r_[0.0, np.cumsum(np.diff(change_ticks) * seconds_per_tick[:-1])]
    segment = np.maximum(np.searchsorted(change_ticks, ticks, side="right") - 1, 0)
    return start_seconds[segment] + (ticks - change_ticks[segment]) * seconds_per_tick[segment]


def max_polyphony(score: Score) -> int:
    """The most notes sounding at one time (a note ending where another starts does not overlap it)."""
    sounding = score.duration > 0
    ticks = np.concatenate([score.onset[sounding], score.offset[sounding]])
    change = np.concatenate([np.ones(sounding.sum(), np.int64), -np.ones(sounding.sum(), np.int64)])
    order = np.lexsort((change, ticks))  # at one tick, ends before starts
    return int(np.cumsum(change[order]).max()) if len(ticks) else 0


def _instruments(score: Score) -> list[dict[str, Any]]:
    order = np.argsort(score.track, kind="stable")
    bounds = np.searchsorted(score.track[order], np.arange(score.n_tracks + 1))
    instruments = []
    for track, name in enumerate(score.track_names):
        notes = order[bounds[track] : bounds[track + 1]]
        programs, counts = np.unique(score.program[notes], return_counts=True)
        instruments.append(
            {
                "track": track,
                "name": name,
                "program": int(programs[counts.argmax()]) if len(notes) else 0,
                "is_drum": bool(2 * np.count_nonzero(score.is_drum[notes]) > len(notes)),
                "n_notes": len(notes),
            }
        )
    return instruments


def _columns(mapping: Any) -> tuple[np.ndarray, ...]:
    return tuple(getattr(mapping, name) for name in mapping.__dataclass_fields__)


def _lists(*columns: np.ndarray) -> tuple[list[Any], ...]:
    return tuple(column.tolist() for column in columns)
