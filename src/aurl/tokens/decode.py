"""Token ids -> Score. Total: any integer sequence decodes to a valid, playable score.

Decoding follows the grammar (grammar.py) token by token; a token the grammar does not allow at its
place is skipped and counted, never guessed at. Notes still sounding when the tokens run out are
closed there. Both facts are recorded in `Score.repairs`, so a model's output always becomes a file
and the caller can see how far it strayed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

import numpy as np

from aurl.midi.score import Score
from aurl.tokens import vocab
from aurl.tokens.grammar import GrammarState
from aurl.tokens.quantize import Grid, grid_to_score


class _Recorder:
    """Collects notes and map changes while a GrammarState walks the tokens."""

    def __init__(self) -> None:
        self.open_onset = np.zeros((vocab.N_TRACKS, vocab.N_PITCHES), np.int64)
        self.open_program = np.zeros((vocab.N_TRACKS, vocab.N_PITCHES), np.int64)
        self.open_velocity = np.zeros((vocab.N_TRACKS, vocab.N_PITCHES), np.int64)
        self.notes: list[tuple[int, int, int, int, int, int]] = []  # onset, offset, pitch, vel, prog, track
        self.tempo: list[tuple[int, int]] = []
        self.ts: list[tuple[int, int]] = []

    def record(self, state: GrammarState, token: int) -> None:
        if vocab.NOTE_ON.start <= token < vocab.NOTE_ON.stop:
            t, p = state.track, token - vocab.NOTE_ON.start
            self.open_onset[t, p] = state.step
            self.open_program[t, p] = state.program[t]
            self.open_velocity[t, p] = state.velocity[t]
        elif vocab.NOTE_OFF.start <= token < vocab.NOTE_OFF.stop:
            self._close(state.track, token - vocab.NOTE_OFF.start, state.step)
        elif vocab.TEMPO.start <= token < vocab.TEMPO.stop:
            self.tempo.append((state.step, state.tempo))
        elif vocab.TIME_SIG.start <= token < vocab.TIME_SIG.stop:
            self.ts.append((state.step, state.ts))

    def _close(self, track: int, pitch: int, step: int) -> None:
        onset = int(self.open_onset[track, pitch])
        self.notes.append(
            (
                onset,
                max(step, onset + 1),
                pitch,
                int(self.open_velocity[track, pitch]),
                int(self.open_program[track, pitch]),
                track,
            )
        )

    def close_all(self, state: GrammarState) -> int:
        tracks, pitches = np.nonzero(state.sounding)
        for t, p in zip(tracks, pitches, strict=True):
            self._close(int(t), int(p), state.step)
        return len(tracks)

    def grid(self) -> Grid:
        notes = np.array(self.notes, np.int64).reshape(-1, 6)
        order = np.lexsort((notes[:, 2], notes[:, 5], notes[:, 0]))
        onset, offset, pitch, velocity, program, track = notes[order].T
        tempo = np.array(self.tempo or [(0, vocab.DEFAULT_TEMPO_INDEX)], np.int64).reshape(-1, 2)
        ts = np.array(self.ts or [(0, vocab.DEFAULT_TS_INDEX)], np.int64).reshape(-1, 2)
        return Grid(
            onset, offset, pitch.astype(np.int16), velocity.astype(np.int16), program.astype(np.int16),
            track.astype(np.int16), tempo[:, 0], tempo[:, 1], ts[:, 0], ts[:, 1],
        )  # fmt: skip


def decode(ids: Iterable[int]) -> Score:
    """The score that token ids describe, at 480 ticks per beat.

    Args:
        ids: token ids (any integers; a numpy array, tensor or list). Tokens that break the grammar
            are skipped; their number is the first entry of `repairs` when there are any.

    Returns:
        A valid Score; for grammatical ids, exactly the canonical score (`quantize`) they encode.
    """
    state, recorder, skipped = GrammarState(), _Recorder(), 0
    for token in np.asarray(ids, np.int64).ravel().tolist():
        if state.ended:
            skipped += token != vocab.PAD
            continue
        if not state.advance(token):
            skipped += 1
            continue
        recorder.record(state, token)
    unfinished = recorder.close_all(state)
    repairs = []
    if skipped:
        repairs.append(f"skipped {skipped} tokens that break the grammar")
    if unfinished:
        repairs.append(f"closed {unfinished} notes still sounding where the tokens end")
    return replace(grid_to_score(recorder.grid()), repairs=tuple(repairs))
