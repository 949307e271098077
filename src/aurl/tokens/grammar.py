"""The token grammar: which token may follow which, given what has been said so far.

A sequence is grammatical when it is exactly what `encode` writes for some score, so that
`encode(decode(ids)) == ids` for every grammatical `ids`. The rules are data where they can be:

- A piece is `BOS Bar TimeSig Tempo` (the header at step 0), then time steps, then `EOS`, then PAD.
- Within a time step, tokens come in stages (STAGE): Bar, TimeSig, Tempo, note-offs, note-ons, and
  each token's stage must exceed the last one's, except that note events of one stage follow each
  other in increasing (track, pitch) order.
- A note event may carry a prefix, in this order: Track (switch voice), Program (the voice's new
  instrument), Velocity (the voice's new velocity bin); PREFIX_NEXT says what may follow each.
  Track, Program and Velocity appear only when they change something.
- TimeShift ends a step. Shifts never cross a bar line: at a bar line the next token is Bar. A step
  holds at least one token, except that a TimeShift_128 may be followed by another shift.
- A Bar before the bar's end (an early bar) must be followed by a TimeSig that changes the metre.
- Tempo and TimeSig appear only when they change the value. EOS comes right after the note-off that
  silences the last note (or right after the header of a piece without notes).

`GrammarState` follows a sequence token by token: `allows(token)` answers for one token and
`mask()` for the whole vocabulary at once (what a sampler needs); both read the same state and
tests check that they agree.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from aurl.tokens import vocab

# Stage of each token family inside a time step.
STAGE = {"Bar": 1, "TimeSig": 2, "Tempo": 3, "NoteOff": 4, "NoteOn": 5}
_OFF, _ON = STAGE["NoteOff"], STAGE["NoteOn"]
# Prefix tokens of a note event and what may follow each.
PREFIX_NEXT = {
    "Track": ("Program", "Velocity", "NoteOn", "NoteOff"),
    "Program": ("Velocity", "NoteOn"),
    "Velocity": ("NoteOn",),
}
# Which family may directly follow which, in some state: the first-order view of the grammar that
# a model's constraint loss uses (a TimeShift follows a TimeShift only after TimeShift_128).
FOLLOWS = {
    "BOS": ("Bar",),
    "Bar": ("TimeSig", "Tempo", "TimeShift", "Track", "Program", "Velocity", "NoteOn", "NoteOff"),
    "TimeSig": ("Tempo", "TimeShift", "Track", "Program", "Velocity", "NoteOn", "NoteOff"),
    "Tempo": ("TimeShift", "Track", "Program", "Velocity", "NoteOn", "NoteOff", "EOS"),
    "TimeShift": ("Bar", "Tempo", "TimeShift", "Track", "Program", "Velocity", "NoteOn", "NoteOff"),
    "Track": PREFIX_NEXT["Track"],
    "Program": PREFIX_NEXT["Program"],
    "Velocity": PREFIX_NEXT["Velocity"],
    "NoteOn": ("TimeShift", "Track", "Program", "Velocity", "NoteOn"),
    "NoteOff": ("TimeShift", "Track", "Program", "Velocity", "NoteOn", "NoteOff", "EOS"),
    "EOS": ("PAD",),
    "PAD": ("PAD",),
}
_NO_PREFIX = ""
_HEADER_DONE = 3  # header stages: 0 wants Bar, 1 wants TimeSig, 2 wants Tempo, 3 done
_FAMILY_NAMES = tuple(vocab.FAMILIES)
_FAMILY_OF = [(_FAMILY_NAMES[f], vocab.FAMILIES[_FAMILY_NAMES[f]].start) for f in vocab.FAMILY_OF]
_MAX_SHIFT_ID = vocab.TIME_SHIFT.start + vocab.MAX_SHIFT - 1


class GrammarState:
    """Where a token sequence stands: time, metre, open notes and the current voice's state.

    Attributes read by decoding: `step` (grid steps from the start), `tempo`, `ts` (value indices),
    `track`, `program` / `velocity` (per track, -1 until set), `sounding` (tracks x pitches).
    """

    def __init__(self) -> None:
        self.started = self.ended = False
        self.header = 0
        self.step = self.pos = 0  # pos: steps since the last bar line
        self.bar_steps = int(vocab.TS_BAR_STEPS[vocab.DEFAULT_TS_INDEX])
        self.ts = self.tempo = -1
        self.stage = 0  # highest stage reached in the current time step (0: nothing yet)
        self.last_track = self.last_pitch = -1  # key of the last note event in this step
        self.prefix = _NO_PREFIX
        self.need_ts = False  # after an early bar
        self.after_max_shift = self.after_note_off = False
        self.notes_started = False
        self.track = 0
        self.program = [-1] * vocab.N_TRACKS
        self.velocity = [-1] * vocab.N_TRACKS
        self.sounding = np.zeros((vocab.N_TRACKS, vocab.N_PITCHES), bool)
        self.n_sounding = [0] * vocab.N_TRACKS
        self.total_sounding = 0

    # --- questions ------------------------------------------------------------------------------

    @property
    def at_bar_line(self) -> bool:
        return self.header == _HEADER_DONE and self.stage == 0 and self.pos == self.bar_steps

    def _order_ok(self, stage: int, track: int, pitch: int) -> bool:
        """Is a note event (stage, track, pitch) later than the last one in this step?"""
        if self.stage != stage:
            return self.stage < stage
        return (track, pitch) > (self.last_track, self.last_pitch)

    def _can_on(self, track: int) -> bool:
        """Could a note start on `track` now (some free pitch in the right order)?"""
        if self.stage < _ON or track > self.last_track:
            return self.n_sounding[track] < vocab.N_PITCHES
        if track < self.last_track:
            return False
        return not self.sounding[track, self.last_pitch + 1 :].all()

    def _can_off(self, track: int) -> bool:
        if self.stage > _OFF or (self.stage == _OFF and track < self.last_track):
            return False
        if self.stage == _OFF and track == self.last_track:
            return bool(self.sounding[track, self.last_pitch + 1 :].any())
        return self.n_sounding[track] > 0

    def _eos_ok(self) -> bool:
        return (
            self.header == _HEADER_DONE
            and self.prefix == _NO_PREFIX
            and self.total_sounding == 0
            and (self.after_note_off or (not self.notes_started and self.step == 0 and self.stage == 3))
        )

    def allows(self, token: int) -> bool:
        """May `token` come next?"""
        if not 0 <= token < vocab.VOCAB_SIZE:
            return False
        if self.ended:
            return token == vocab.PAD
        if not self.started:
            return token == vocab.BOS
        family, start = _FAMILY_OF[token]
        value = token - start
        if self.header < _HEADER_DONE:
            return family == ("Bar", "TimeSig", "Tempo")[self.header]
        if self.at_bar_line:
            return family == "Bar"
        if self.need_ts:
            return family == "TimeSig" and value != self.ts
        return bool(_RULES[family](self, value))

    def _allows_special(self, value: int) -> bool:
        return value == vocab.EOS and self._eos_ok()

    def _allows_bar(self, value: int) -> bool:
        return self.stage == 0 and self.prefix == _NO_PREFIX and 0 < self.pos < self.bar_steps

    def _allows_time_sig(self, value: int) -> bool:
        return self.stage == 1 and self.prefix == _NO_PREFIX and value != self.ts

    def _allows_tempo(self, value: int) -> bool:
        return self.prefix == _NO_PREFIX and self.stage <= 2 and value != self.tempo

    def _allows_time_shift(self, value: int) -> bool:
        return (
            self.prefix == _NO_PREFIX
            and (self.stage > 0 or self.after_max_shift)
            and self.pos + value + 1 <= self.bar_steps
        )

    def _allows_track(self, value: int) -> bool:
        return (
            self.prefix == _NO_PREFIX
            and value != self.track
            and (self._can_off(value) or self._can_on(value))
        )

    def _allows_program(self, value: int) -> bool:
        return (
            self.prefix in (_NO_PREFIX, "Track")
            and value != self.program[self.track]
            and self._can_on(self.track)
        )

    def _allows_velocity(self, value: int) -> bool:
        return (
            self.prefix != "Velocity"
            and self.program[self.track] >= 0
            and value != self.velocity[self.track]
            and self._can_on(self.track)
        )

    def _allows_note_on(self, pitch: int) -> bool:
        t = self.track
        return (
            self.program[t] >= 0
            and self.velocity[t] >= 0
            and not self.sounding[t, pitch]
            and self._order_ok(_ON, t, pitch)
        )

    def _allows_note_off(self, pitch: int) -> bool:
        t = self.track
        return (
            self.prefix in (_NO_PREFIX, "Track")
            and self.sounding[t, pitch]
            and self._order_ok(_OFF, t, pitch)
        )

    def mask(self) -> np.ndarray:
        """(V,) bool: the tokens that may come next; never all False before EOS."""
        mask = np.zeros(vocab.VOCAB_SIZE, bool)
        if self.ended or not self.started:
            mask[vocab.PAD if self.ended else vocab.BOS] = True
            return mask
        if self.header < _HEADER_DONE:
            family = vocab.FAMILIES[("Bar", "TimeSig", "Tempo")[self.header]]
            mask[family.start : family.stop] = True
            return mask
        if self.at_bar_line:
            mask[vocab.BAR] = True
            return mask
        if self.need_ts:
            self._fill(mask, vocab.TIME_SIG, exclude=self.ts)
            return mask
        mask[vocab.EOS] = self._eos_ok()
        mask[vocab.BAR] = self._allows_bar(0)
        if self.stage == 1 and self.prefix == _NO_PREFIX:
            self._fill(mask, vocab.TIME_SIG, exclude=self.ts)
        if self.prefix == _NO_PREFIX and self.stage <= 2:
            self._fill(mask, vocab.TEMPO, exclude=self.tempo)
        if self._allows_time_shift(0):
            longest = min(vocab.MAX_SHIFT, self.bar_steps - self.pos)
            mask[vocab.TIME_SHIFT.start : vocab.TIME_SHIFT.start + longest] = True
        if self.prefix == _NO_PREFIX:
            mask[vocab.TRACK.start : vocab.TRACK.stop] = self._track_mask()
        can_on = self._can_on(self.track)
        if can_on and self.prefix in (_NO_PREFIX, "Track"):
            self._fill(mask, vocab.PROGRAM, exclude=self.program[self.track])
        if can_on and self.prefix != "Velocity" and self.program[self.track] >= 0:
            self._fill(mask, vocab.VELOCITY, exclude=self.velocity[self.track])
        mask[vocab.NOTE_ON.start : vocab.NOTE_ON.stop] = self._pitch_mask(_ON)
        if self.prefix in (_NO_PREFIX, "Track"):
            mask[vocab.NOTE_OFF.start : vocab.NOTE_OFF.stop] = self._pitch_mask(_OFF)
        return mask

    def _track_mask(self) -> np.ndarray:
        """(32,) bool: `_allows_track` for every track at once, with no prefix pending.

        Within a note stage the last event's track is the current one, which a Track token may not
        name; of the others, only later tracks still have a note event in order.
        """
        counts = np.asarray(self.n_sounding)
        later = np.arange(vocab.N_TRACKS) > self.last_track
        can_on = (counts < vocab.N_PITCHES) & (later if self.stage >= _ON else True)
        can_off = (counts > 0) & (later if self.stage == _OFF else self.stage < _OFF)
        allowed = can_on | can_off
        allowed[self.track] = False
        return allowed

    def _pitch_mask(self, stage: int) -> np.ndarray:
        t = self.track
        if stage == _ON and (self.program[t] < 0 or self.velocity[t] < 0):
            return np.zeros(vocab.N_PITCHES, bool)
        allowed = ~self.sounding[t] if stage == _ON else self.sounding[t].copy()
        if self.stage > stage or (self.stage == stage and t < self.last_track):
            allowed[:] = False
        elif self.stage == stage and t == self.last_track:
            allowed[: self.last_pitch + 1] = False
        return allowed

    @staticmethod
    def _fill(mask: np.ndarray, family: vocab.Family, exclude: int) -> None:
        mask[family.start : family.stop] = True
        if exclude >= 0:
            mask[family.start + exclude] = False

    # --- moves ----------------------------------------------------------------------------------

    def advance(self, token: int) -> bool:
        """Apply `token` if the grammar allows it; return whether it did (state unchanged if not)."""
        if not self.allows(token):
            return False
        if token == vocab.BOS:
            self.started = True
        elif token == vocab.EOS:
            self.ended = True
        elif token != vocab.PAD:
            family, start = _FAMILY_OF[token]
            _MOVES[family](self, token - start)
        self.after_max_shift = token == _MAX_SHIFT_ID
        self.after_note_off = token >= vocab.NOTE_OFF.start
        return True

    def _header_step(self) -> None:
        if self.header < _HEADER_DONE:
            self.header += 1

    def _move_bar(self, value: int) -> None:
        self.need_ts = self.header == _HEADER_DONE and self.pos < self.bar_steps
        self._header_step()
        self.pos, self.stage = 0, 1

    def _move_time_sig(self, value: int) -> None:
        self.ts, self.need_ts, self.stage = value, False, 2
        self.bar_steps = int(vocab.TS_BAR_STEPS[value])
        self._header_step()

    def _move_tempo(self, value: int) -> None:
        self.tempo, self.stage = value, 3
        self._header_step()

    def _move_time_shift(self, value: int) -> None:
        self.step += value + 1
        self.pos += value + 1
        self.stage, self.last_track, self.last_pitch = 0, -1, -1

    def _move_track(self, value: int) -> None:
        self.track, self.prefix = value, "Track"

    def _move_program(self, value: int) -> None:
        self.program[self.track], self.prefix = value, "Program"

    def _move_velocity(self, value: int) -> None:
        self.velocity[self.track], self.prefix = value, "Velocity"

    def _move_note(self, pitch: int, on: bool) -> None:
        t = self.track
        self.sounding[t, pitch] = on
        delta = 1 if on else -1
        self.n_sounding[t] += delta
        self.total_sounding += delta
        self.stage, self.last_track, self.last_pitch, self.prefix = (
            (_ON if on else _OFF),
            t,
            pitch,
            _NO_PREFIX,
        )
        self.notes_started |= on

    def _move_note_on(self, pitch: int) -> None:
        self._move_note(pitch, True)

    def _move_note_off(self, pitch: int) -> None:
        self._move_note(pitch, False)


_RULES = {
    "Special": GrammarState._allows_special,
    "Bar": GrammarState._allows_bar,
    "TimeSig": GrammarState._allows_time_sig,
    "Tempo": GrammarState._allows_tempo,
    "TimeShift": GrammarState._allows_time_shift,
    "Track": GrammarState._allows_track,
    "Program": GrammarState._allows_program,
    "Velocity": GrammarState._allows_velocity,
    "NoteOn": GrammarState._allows_note_on,
    "NoteOff": GrammarState._allows_note_off,
}
_MOVES = {
    "Bar": GrammarState._move_bar,
    "TimeSig": GrammarState._move_time_sig,
    "Tempo": GrammarState._move_tempo,
    "TimeShift": GrammarState._move_time_shift,
    "Track": GrammarState._move_track,
    "Program": GrammarState._move_program,
    "Velocity": GrammarState._move_velocity,
    "NoteOn": GrammarState._move_note_on,
    "NoteOff": GrammarState._move_note_off,
}


def _ids_of(name: str) -> np.ndarray:
    if name in vocab.SPECIAL_NAMES:
        return np.array([vocab.SPECIAL_NAMES.index(name)])
    family = vocab.FAMILIES[name]
    return np.arange(family.start, family.stop)


def follow_matrix() -> np.ndarray:
    """(V, V) bool: `follow[a, b]` is True when token b may directly follow token a in some state."""
    follow = np.zeros((vocab.VOCAB_SIZE, vocab.VOCAB_SIZE), bool)
    for first, nexts in FOLLOWS.items():
        for second in nexts:
            follow[np.ix_(_ids_of(first), _ids_of(second))] = True
    shifts = _ids_of("TimeShift")
    follow[np.ix_(shifts[:-1], shifts)] = False
    return follow


def model_tables() -> dict[str, Any]:
    """What a model may know of the tokens: the keyword arguments of models.TokenTable."""
    forbidden = np.zeros(vocab.VOCAB_SIZE, bool)
    forbidden[[vocab.PAD, vocab.BOS, vocab.MASK]] = True
    return {
        "time_advance": vocab.time_advance_table(),
        "bar_start": vocab.bar_start_table(),
        "bar_steps": vocab.bar_steps_table(),
        "forbidden": forbidden,
        "follow": follow_matrix(),
        "note_on_start": vocab.NOTE_ON.start,
    }


def count_invalid(ids: Iterable[int]) -> int:
    """How many tokens of `ids` break the grammar (each is skipped and the rest read on)."""
    state = GrammarState()
    return sum(not state.advance(int(token)) for token in ids)


def is_valid(ids: Iterable[int]) -> bool:
    """True when `ids` is a complete grammatical piece: BOS ... EOS, then only PAD."""
    state = GrammarState()
    return all(state.advance(int(token)) for token in ids) and state.ended
