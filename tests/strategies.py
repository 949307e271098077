"""Hypothesis strategies for notes, scores and token sequences, shared by the test packages."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from aurl.midi.score import Score, TempoMap, TimeSignatureMap

TICKS_PER_BEAT = st.sampled_from([1, 7, 24, 96, 120, 384, 480, 960, 10080])


@st.composite
def scores(draw, max_notes: int = 60, max_tracks: int = 40) -> Score:
    """Random scores: any tpq, overlapping and duplicate notes, drums, many tracks, odd metres."""
    tpq = draw(TICKS_PER_BEAT)
    n = draw(st.integers(0, max_notes))
    span = draw(st.integers(1, 64)) * tpq
    ints = lambda lo, hi: st.lists(st.integers(lo, hi), min_size=n, max_size=n)  # noqa: E731
    notes = {
        "pitch": draw(ints(0, 127)),
        "onset": draw(ints(0, span)),
        "duration": draw(ints(0, 8 * tpq)),
        "velocity": draw(ints(1, 127)),
        "program": draw(ints(0, 127)),
        "is_drum": draw(st.lists(st.booleans(), min_size=n, max_size=n)),
        "track": draw(ints(0, max_tracks - 1)),
    }
    n_tempo = draw(st.integers(0, 4))
    tempo_ticks = sorted(draw(st.lists(st.integers(0, span), min_size=n_tempo, max_size=n_tempo)))
    tempos = TempoMap(tempo_ticks, draw(st.lists(st.floats(5, 1500), min_size=n_tempo, max_size=n_tempo)))
    n_ts = draw(st.integers(0, 3))
    ts_ticks = sorted(draw(st.lists(st.integers(0, span), min_size=n_ts, max_size=n_ts)))
    numerators = draw(st.lists(st.integers(1, 20), min_size=n_ts, max_size=n_ts))
    denominators = draw(st.lists(st.sampled_from([1, 2, 4, 8, 16, 32]), min_size=n_ts, max_size=n_ts))
    return Score.from_notes(
        tpq,
        {k: np.asarray(v) for k, v in notes.items()},
        tempos=tempos,
        time_signatures=TimeSignatureMap(ts_ticks, numerators, denominators),
    )


token_lists = st.lists(st.integers(-5, 800), max_size=300)
