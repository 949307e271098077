"""One piece being generated: its grammar state, tokens, log-probabilities, progress and ending.

Shared by sampling (generate.py) and beam search (beam.py). A row ends when the model writes EOS,
when closing has silenced every note (the piece then gets its EOS), or at the token budget.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from aurl.errors import TokenizeError
from aurl.sample.stopping import Progress, StopRule
from aurl.tokens import GrammarState, vocab

_HEADER_DONE = 3  # GrammarState.header once BOS Bar TimeSig Tempo are through


@dataclass
class Row:
    """A piece in progress.

    Attributes:
        state: the grammar state after `prompt` and `tokens`.
        prompt: the tokens it started from (BOS, or a primer without its EOS).
        tokens: new tokens so far.
        log_probs: log-probability of each new token under the constrained model (masked logits,
            before temperature and the other processors).
        closing: the stopping rule has fired.
        done: no more tokens will come; `ended_by` says why ("eos", "stop" or "budget").
    """

    state: GrammarState
    prompt: np.ndarray
    tokens: list[int] = field(default_factory=list)
    log_probs: list[float] = field(default_factory=list)
    progress: Progress = field(default_factory=Progress)
    closing: bool = False
    done: bool = False
    ended_by: str = ""

    @classmethod
    def start(cls, prompt: np.ndarray) -> Row:
        """A row after `prompt` (which must start with BOS and follow the grammar).

        Raises:
            TokenizeError: a prompt token breaks the grammar.
        """
        state = GrammarState()
        for i, token in enumerate(prompt.tolist()):
            if not state.advance(int(token)):
                name = vocab.token_name(int(token)) if 0 <= token < vocab.VOCAB_SIZE else str(token)
                raise TokenizeError(
                    f"primer token {i} ({name}) breaks the token grammar; encode the primer with aurl.encode"
                )
        return cls(state, prompt)

    def copy(self) -> Row:
        """An independent copy (beam search branches rows)."""
        return Row(
            copy.deepcopy(self.state),
            self.prompt,
            list(self.tokens),
            list(self.log_probs),
            copy.copy(self.progress),
            self.closing,
            self.done,
            self.ended_by,
        )

    def push(self, token: int, log_prob: float, stop: StopRule, max_tokens: int) -> None:
        """Append a token the mask allowed, and decide whether the row closes or ends."""
        advanced = self.state.advance(token)
        assert advanced, f"sampled {vocab.token_name(token)} that the mask did not allow"
        self.tokens.append(token)
        self.log_probs.append(log_prob)
        self.progress.add(token, self.state)
        if token == vocab.EOS:
            self.done, self.ended_by = True, "eos"
            return
        self.closing = self.closing or stop.fires(self.progress, self.state, max_tokens)
        if self.closing and self._closable():
            self.done, self.ended_by = True, "stop"
        elif len(self.tokens) >= max_tokens:
            self.done, self.ended_by = True, "budget"

    @property
    def log_prob(self) -> float:
        """Sum of the kept new tokens' log-probabilities."""
        return float(sum(self.log_probs[: self._kept()]))

    @property
    def new_length(self) -> int:
        """Tokens of the finished piece after the prompt: the kept new tokens and an added EOS."""
        return self._kept() + int(self._closable())

    def ids(self) -> np.ndarray:
        """(T,) int64: prompt, new tokens and EOS; a closed piece ends at its last note-off.

        After closing, the tokens past the last note-off (time shifts, a bar line) say nothing a
        decoder keeps, and the grammar wants EOS right after the last note-off, so they are cut. A
        row that ran out of budget with notes sounding keeps every token and no EOS (decoding
        closes those notes at the end).
        """
        body = np.concatenate([self.prompt, np.asarray(self.tokens[: self._kept()], np.int64)])
        tail = [vocab.EOS] if self._closable() else []
        return np.concatenate([body, tail]).astype(np.int64)

    def _closable(self) -> bool:
        """Can the piece end with an EOS the model did not write: nothing sounds, no event pending."""
        s = self.state
        quiet = s.total_sounding == 0 and s.prefix == ""
        return self.ended_by != "eos" and s.header >= _HEADER_DONE and quiet

    def _kept(self) -> int:
        """How many new tokens stay in the piece (all, or up to the last note-off when closable)."""
        if not self._closable():
            return len(self.tokens)
        everything = np.concatenate([self.prompt, np.asarray(self.tokens, np.int64)])
        offs = np.flatnonzero(everything >= vocab.NOTE_OFF.start)
        end = int(offs[-1]) + 1 if len(offs) else _header_length(everything)
        return max(0, end - len(self.prompt))


def _header_length(ids: np.ndarray) -> int:
    """Tokens up to the end of the header (BOS Bar TimeSig Tempo): a piece without notes ends there."""
    tempo = np.flatnonzero((ids >= vocab.TEMPO.start) & (ids < vocab.TEMPO.stop))
    return int(tempo[0]) + 1 if len(tempo) else len(ids)
