"""When a piece should end: after N new bars, about N new tokens, or S seconds of new music.

When the rule fires, generation does not cut the piece off: the row switches to closing mode
(`ConstraintSet.mask(..., closing=True)`), in which the model ends its sounding notes and the piece
gets its EOS. Tokens of a primer do not count; only new ones do.
"""

from __future__ import annotations

from dataclasses import dataclass

from aurl.config import SampleConfig
from aurl.errors import ConfigError
from aurl.tokens import GrammarState, vocab

# Tokens kept free for closing: a note-off and perhaps a Track token per sounding note, and
# besides a time shift, a bar line, a pending note event (Velocity, NoteOn, its Track and
# note-off), the EOS, and the token that fires the rule.
_CLOSING_SLACK = 8


@dataclass(frozen=True)
class StopRule:
    """The stopping rule; each limit is optional and the first one reached ends the piece.

    Attributes:
        bars: new bars (a bar ends at the next bar line).
        tokens: new tokens; closing starts early enough for the piece to end within this many.
        seconds: seconds of new music, through the tempo in force at each time shift.

    Raises:
        ConfigError: a limit that is not positive.
    """

    bars: int | None = None
    tokens: int | None = None
    seconds: float | None = None

    def __post_init__(self) -> None:
        for name in ("bars", "tokens", "seconds"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"--{name} {value} must be positive")

    @classmethod
    def from_config(cls, config: SampleConfig) -> StopRule:
        return cls(bars=config.bars, tokens=config.length, seconds=config.seconds)

    def fires(self, progress: Progress, state: GrammarState, max_tokens: int) -> bool:
        """Should the row start closing, now that `progress` has been made and `state` is reached?"""
        budget = max_tokens if self.tokens is None else min(self.tokens, max_tokens)
        if progress.tokens + 2 * state.total_sounding + _CLOSING_SLACK >= budget:
            return True
        if self.bars is not None and progress.bars > self.bars:
            return True  # the bar line that starts bar N + 1
        return self.seconds is not None and progress.seconds >= self.seconds


@dataclass
class Progress:
    """New tokens, bar lines and seconds of music since generation started (primer excluded)."""

    tokens: int = 0
    bars: int = 0
    seconds: float = 0.0

    def add(self, token: int, state: GrammarState) -> None:
        """Count `token`, which `state` has just advanced over."""
        self.tokens += 1
        if token == vocab.BAR:
            self.bars += 1
        elif vocab.TIME_SHIFT.start <= token < vocab.TIME_SHIFT.stop:
            steps = token - vocab.TIME_SHIFT.start + 1
            bpm = float(vocab.TEMPO_BPM[max(state.tempo, 0)])
            self.seconds += steps / vocab.STEPS_PER_BEAT * 60.0 / bpm
