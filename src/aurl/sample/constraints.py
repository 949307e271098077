"""Constraints as masks over the next token, applied before sampling: grammar, key, range, and more.

`ConstraintSet.mask(state)` starts from the grammar (`GrammarState.mask`, so every output decodes
with no skipped token), lets each constraint clear the tokens it forbids, and then clears the
prefix tokens (Track, Program, Velocity) that would lead into a dead end: a Velocity is only
allowed when some note it could precede is allowed. So a row always keeps a way forward, whatever
the constraints, and sampling never has to break a rule.

A constraint has two hooks: `restrict(mask, state)` for the non-note families (tempo, metre, bar
lines, programs) and `notes(state, drum)` for the NoteOn pitches a track may start. Drums are told
apart by their track's Program state (Program_Drums); key and range constraints exempt them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from aurl.config import SampleConfig
from aurl.errors import ConfigError
from aurl.sample import pitches
from aurl.tokens import GrammarState, vocab

_ON = slice(vocab.NOTE_ON.start, vocab.NOTE_ON.stop)
_OFF = slice(vocab.NOTE_OFF.start, vocab.NOTE_OFF.stop)
_TRACKS = slice(vocab.TRACK.start, vocab.TRACK.stop)
_PROGRAMS = slice(vocab.PROGRAM.start, vocab.PROGRAM.stop)
_VELOCITIES = slice(vocab.VELOCITY.start, vocab.VELOCITY.stop)
_SHIFTS = slice(vocab.TIME_SHIFT.start, vocab.TIME_SHIFT.stop)
_DRUMS = vocab.DRUM_PROGRAM_TOKEN
_STAGE_OFF, _STAGE_ON = 4, 5  # grammar.STAGE of note-offs and note-ons


class Constraint:
    """A rule on what may come next. The defaults allow everything; subclasses override a hook."""

    def restrict(self, mask: np.ndarray, state: GrammarState) -> None:
        """Clear, in the (V,) bool `mask`, the tokens other than NoteOn that this rule forbids now."""

    def notes(self, state: GrammarState, drum: bool) -> np.ndarray | None:
        """(128,) bool NoteOn pitches allowed on a pitched (or drum) track now; None allows all."""
        return None

    def programs(self) -> np.ndarray | None:
        """(129,) bool Program values new notes may use (128 is drums); None allows all."""
        return None

    def tracks(self, state: GrammarState) -> np.ndarray | None:
        """(32,) bool tracks that may start a note now; None allows all."""
        return None

    def describe(self) -> str:
        """A short text for logs and the output's metadata."""
        return type(self).__name__


class Scale(Constraint):
    """Pitched notes only from the given pitch classes (0 = C); drums are exempt.

    Raises:
        ConfigError: no pitch class.
    """

    def __init__(self, pitch_classes: frozenset[int]) -> None:
        if not pitch_classes:
            raise ConfigError("the scale is empty: no pitch class allowed; name a scale such as 'major'")
        self.pitch_classes = frozenset(int(pc) % 12 for pc in pitch_classes)
        self._mask = np.isin(np.arange(vocab.N_PITCHES) % 12, sorted(self.pitch_classes))

    def notes(self, state: GrammarState, drum: bool) -> np.ndarray | None:
        return None if drum else self._mask

    def describe(self) -> str:
        return f"scale {sorted(self.pitch_classes)}"


class PitchRange(Constraint):
    """Pitched notes only from low to high (MIDI numbers, both included); drums are exempt.

    Raises:
        ConfigError: a bound outside 0..127 or low > high.
    """

    def __init__(self, low: int, high: int) -> None:
        if not 0 <= low <= high <= 127:
            raise ConfigError(f"pitch range {low}-{high} must lie within 0..127 with low <= high")
        self.low, self.high = int(low), int(high)
        self._mask = (np.arange(vocab.N_PITCHES) >= low) & (np.arange(vocab.N_PITCHES) <= high)

    def notes(self, state: GrammarState, drum: bool) -> np.ndarray | None:
        return None if drum else self._mask

    def describe(self) -> str:
        return f"pitch range {self.low}-{self.high}"


class MaxPolyphony(Constraint):
    """At most `limit` notes sounding at once, over all tracks (drums included).

    Raises:
        ConfigError: limit < 1.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ConfigError(f"--max-polyphony {limit} must be at least 1 note")
        self.limit = int(limit)
        self._none = np.zeros(vocab.N_PITCHES, bool)

    def notes(self, state: GrammarState, drum: bool) -> np.ndarray | None:
        return self._none if state.total_sounding >= self.limit else None

    def describe(self) -> str:
        return f"max polyphony {self.limit}"


class MaxVoicePolyphony(Constraint):
    """At most `limit` notes sounding at once in each track: 1 makes every track a monophonic voice,
    as the parts of a chorale, a string quartet or a wind section are.

    Raises:
        ConfigError: limit < 1.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ConfigError(f"--max-voice-polyphony {limit} must be at least 1 note")
        self.limit = int(limit)

    def tracks(self, state: GrammarState) -> np.ndarray | None:
        return np.asarray(state.n_sounding) < self.limit

    def describe(self) -> str:
        return f"max polyphony per voice {self.limit}"


class FixedTempo(Constraint):
    """The tempo token is forced to one bin: the header's tempo, and the only change allowed."""

    def __init__(self, index: int) -> None:
        if not 0 <= index < vocab.N_TEMPOS:
            raise ConfigError(f"tempo bin {index} outside 0..{vocab.N_TEMPOS - 1}")
        self.index = int(index)

    def restrict(self, mask: np.ndarray, state: GrammarState) -> None:
        keep = mask[vocab.TEMPO.start + self.index]
        mask[vocab.TEMPO.start : vocab.TEMPO.stop] = False
        mask[vocab.TEMPO.start + self.index] = keep

    def describe(self) -> str:
        return f"tempo {vocab.TEMPO_BPM[self.index]:.1f} bpm"


class FixedTimeSignature(Constraint):
    """The metre is forced: the header's time signature, and no other change (no early bar lines)."""

    def __init__(self, index: int) -> None:
        if not 0 <= index < vocab.TIME_SIG.size:
            raise ConfigError(f"time-signature index {index} outside 0..{vocab.TIME_SIG.size - 1}")
        self.index = int(index)

    def restrict(self, mask: np.ndarray, state: GrammarState) -> None:
        keep = mask[vocab.TIME_SIG.start + self.index]
        mask[vocab.TIME_SIG.start : vocab.TIME_SIG.stop] = False
        mask[vocab.TIME_SIG.start + self.index] = keep
        # An early bar line must be followed by a metre change; with the metre fixed there is none.
        if state.ts == self.index and not state.at_bar_line:
            mask[vocab.BAR] = False

    def describe(self) -> str:
        return f"time signature {vocab.TOKEN_NAMES[vocab.TIME_SIG.start + self.index].split('_')[1]}"


class Programs(Constraint):
    """New notes only on the given programs (0..127, 128 for drums); other Program tokens are masked.

    Raises:
        ConfigError: an empty list or a program outside 0..128.
    """

    def __init__(self, programs: Sequence[int]) -> None:
        self._allowed = pitches.parse_programs(tuple(programs))

    def restrict(self, mask: np.ndarray, state: GrammarState) -> None:
        mask[_PROGRAMS] &= self._allowed

    def programs(self) -> np.ndarray | None:
        return self._allowed

    def describe(self) -> str:
        return f"programs {np.flatnonzero(self._allowed).tolist()}"


class ConstraintSet:
    """The grammar plus constraints, as one mask per row; see the module docstring.

    Args:
        constraints: the rules; none leaves the grammar alone.

    Raises:
        ConfigError: the constraints allow no pitched note (or, with drums alone allowed, no drum note).
    """

    def __init__(self, constraints: Sequence[Constraint] = ()) -> None:
        self.constraints = tuple(constraints)
        allowed = [c.programs() for c in self.constraints]
        self._programs = np.logical_and.reduce(
            [a for a in allowed if a is not None] or [np.ones(vocab.N_PROGRAMS + 1, bool)]
        )
        self._check_satisfiable()

    def _check_satisfiable(self) -> None:
        state = GrammarState()
        rules = "; ".join(c.describe() for c in self.constraints)
        if self._programs[:_DRUMS].any() and not self._notes(state, False).any():
            raise ConfigError(f"the constraints allow no pitched note ({rules}); widen the range or scale")
        if not self._programs[:_DRUMS].any() and not self._notes(state, True).any():
            raise ConfigError(f"the constraints allow no drum note ({rules}); widen them")

    def describe(self) -> list[str]:
        """One text per constraint."""
        return [c.describe() for c in self.constraints]

    def _notes(self, state: GrammarState, drum: bool) -> np.ndarray:
        allowed = np.ones(vocab.N_PITCHES, bool)
        for constraint in self.constraints:
            notes = constraint.notes(state, drum)
            if notes is not None:
                allowed &= notes
        return allowed

    def mask(self, state: GrammarState, closing: bool = False) -> np.ndarray:
        """(V,) bool: the tokens that may come next; never all False before the piece ends.

        Args:
            state: where the row stands.
            closing: the stopping rule fired: only end the sounding notes (note-offs track by
                track, a time shift when none can end in this step) and EOS.
        """
        mask = state.mask()
        if state.ended or not state.started:
            return mask
        if self.constraints:
            self._apply(mask, state)
        if closing:
            mask = _closing(mask, state)
        assert mask.any(), "constraints left no token; ConstraintSet must keep a way forward"
        return mask

    def _tracks(self, state: GrammarState) -> np.ndarray:
        allowed = np.ones(vocab.N_TRACKS, bool)
        for constraint in self.constraints:
            tracks = constraint.tracks(state)
            if tracks is not None:
                allowed &= tracks
        return allowed

    def _apply(self, mask: np.ndarray, state: GrammarState) -> None:
        for constraint in self.constraints:
            constraint.restrict(mask, state)
        notes = {False: self._notes(state, False), True: self._notes(state, True)}
        open_tracks = self._tracks(state)
        t, program = state.track, state.program[state.track]
        current_ok = program >= 0 and bool(self._programs[program]) and bool(open_tracks[t])
        mask[_ON] &= notes[program == _DRUMS] if current_ok else False
        free = _free_pitches(state)[t]
        if mask[_VELOCITIES].any() and not (current_ok and (free & notes[program == _DRUMS]).any()):
            mask[_VELOCITIES] = False
        if mask[_PROGRAMS].any():
            opens = bool(open_tracks[t])
            mask[vocab.PROGRAM.start : vocab.PROGRAM.start + _DRUMS] &= opens and bool(
                (free & notes[False]).any()
            )
            mask[vocab.PROGRAM.start + _DRUMS] &= opens and bool((free & notes[True]).any())
        if mask[_TRACKS].any():
            mask[_TRACKS] &= self._viable_tracks(state, notes, open_tracks)

    def _viable_tracks(
        self, state: GrammarState, notes: dict[bool, np.ndarray], open_tracks: np.ndarray
    ) -> np.ndarray:
        """(32,) bool: tracks on which a note could end, or start under the constraints, right now."""
        free = _free_pitches(state)
        can_on_pitched = (free & notes[False]).any(1) & open_tracks
        can_on_drum = (free & notes[True]).any(1) & open_tracks
        current = np.asarray(state.program)
        allowed = self._programs
        keeps = (current >= 0) & allowed[current.clip(0)]
        pitched_now = keeps & (current != _DRUMS)
        drum_now = keeps & (current == _DRUMS)
        # Another allowed program the track could switch to with a Program token.
        n_pitched = int(allowed[:_DRUMS].sum())
        pitched_other = n_pitched - (pitched_now & (current >= 0)).astype(int) > 0
        drum_other = bool(allowed[_DRUMS]) & (current != _DRUMS)
        on = ((pitched_now | pitched_other) & can_on_pitched) | ((drum_now | drum_other) & can_on_drum)
        return on | _off_pitches(state).any(1)


def _order_rows(state: GrammarState, stage: int) -> tuple[np.ndarray, int]:
    """(32,) bool tracks still open for a note event of `stage` in this time step, and the partial
    track (the last note event's, open only above its pitch) or -1."""
    tracks = np.arange(vocab.N_TRACKS)
    if state.stage > stage:
        return np.zeros(vocab.N_TRACKS, bool), -1
    if state.stage < stage:
        return np.ones(vocab.N_TRACKS, bool), -1
    return tracks > state.last_track, state.last_track


def _free_pitches(state: GrammarState) -> np.ndarray:
    """(32, 128) bool: pitches each track could start now by the grammar's order and sounding rules,
    whatever its Program and Velocity are (a prefix can set those)."""
    rows, partial = _order_rows(state, _STAGE_ON)
    free = ~state.sounding & rows[:, None]
    if partial >= 0:
        free[partial, state.last_pitch + 1 :] = ~state.sounding[partial, state.last_pitch + 1 :]
    return free


def _off_pitches(state: GrammarState) -> np.ndarray:
    """(32, 128) bool: sounding pitches each track could end now by the grammar's order."""
    rows, partial = _order_rows(state, _STAGE_OFF)
    off = state.sounding & rows[:, None]
    if partial >= 0:
        off[partial, state.last_pitch + 1 :] = state.sounding[partial, state.last_pitch + 1 :]
    return off


def _closing(mask: np.ndarray, state: GrammarState) -> np.ndarray:
    """Narrow a row's mask to what ends its music quickly (see `ConstraintSet.mask`).

    Notes end in the order the grammar wants within a time step (track, then pitch, from the
    lowest), so closing takes one note-off per sounding note, a Track token per track and at most
    one time shift (when some note cannot end in the current step); only its length is the model's.
    """
    if state.prefix in ("Program", "Velocity"):
        return mask  # a started note event must be finished first
    ending = np.zeros_like(mask)
    ending[vocab.EOS] = mask[vocab.EOS]
    off = _off_pitches(state)
    tracks = np.flatnonzero(off.any(1))
    if len(tracks) and tracks[0] == state.track:
        lowest = vocab.NOTE_OFF.start + int(np.flatnonzero(off[state.track])[0])
        ending[lowest] = mask[lowest]
    elif len(tracks) and state.prefix == "":
        ending[vocab.TRACK.start + tracks[0]] = mask[vocab.TRACK.start + tracks[0]]
    if not ending.any():
        ending[_SHIFTS] = mask[_SHIFTS]
        ending[vocab.BAR] = mask[vocab.BAR] and state.at_bar_line
    return ending if ending.any() else mask


def build_constraints(config: SampleConfig) -> ConstraintSet:
    """The ConstraintSet the settings ask for (key/scale, range, polyphony, tempo, metre, programs).

    Raises:
        ConfigError: an unreadable or impossible constraint, in one line.
    """
    rules: list[Constraint] = []
    classes = pitches.parse_key(config.key, config.scale)
    if classes is not None:
        rules.append(Scale(classes))
    if config.pitch_range is not None:
        rules.append(PitchRange(*pitches.parse_pitch_range(config.pitch_range)))
    if config.max_polyphony is not None:
        rules.append(MaxPolyphony(config.max_polyphony))
    if config.max_voice_polyphony is not None:
        rules.append(MaxVoicePolyphony(config.max_voice_polyphony))
    if config.tempo is not None:
        rules.append(FixedTempo(pitches.parse_tempo(config.tempo)))
    if config.time_signature is not None:
        rules.append(FixedTimeSignature(pitches.parse_time_signature(config.time_signature)))
    if config.programs is not None:
        rules.append(Programs(config.programs))
    return ConstraintSet(rules)
