"""Hand-made music for the analysis and evaluation tests (`from analyze.music import build`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from aurl.midi.score import Score, TimeSignatureMap

TPQ = 480
Note = tuple[int, float, float]  # pitch, onset in beats, duration in beats


def build(
    notes: Sequence[Note], tpq: int = TPQ, time_signature: tuple[int, int] | None = None, **rest
) -> Score:
    """A one-track score from (pitch, onset_beats, duration_beats) triples."""
    pitch, onset, duration = (
        (np.array(column) for column in zip(*notes, strict=True)) if notes else ([], [], [])
    )
    if time_signature is not None:
        rest["time_signatures"] = TimeSignatureMap([0], [time_signature[0]], [time_signature[1]])
    return Score.from_notes(
        tpq,
        {
            "pitch": np.asarray(pitch, np.int64),
            "onset": np.rint(np.asarray(onset, np.float64) * tpq).astype(np.int64),
            "duration": np.rint(np.asarray(duration, np.float64) * tpq).astype(np.int64),
        },
        **rest,
    )


def chords(voicings: Sequence[Sequence[int]], beats: float = 4.0, start: float = 0.0) -> list[Note]:
    """Block chords, one after another, each `beats` long."""
    return [(p, start + i * beats, beats) for i, chord in enumerate(voicings) for p in chord]


def cadence(tonic: int, minor: bool) -> list[list[int]]:
    """I-IV-V-I (i-iv-V-i with a raised leading tone in minor) in close position over a bass."""
    third = 3 if minor else 4
    degrees = [(0, (0, third, 7)), (5, (0, third, 7)), (7, (0, 4, 7)), (0, (0, third, 7))]
    out = []
    for root, intervals in degrees:
        bass = 48 + (tonic + root) % 12
        out.append([bass] + [60 + (tonic + root + i) % 12 for i in intervals])
    return out
