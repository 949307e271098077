"""TokenTable: what the model knows of tokens, handed to it as data (models/ never imports tokens/)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch
from torch import Tensor

from aurl.errors import ConfigError

log = logging.getLogger(__name__)

N_PITCHES = 128  # MIDI pitches, one NoteOn id each


@dataclass(frozen=True, eq=False)
class TokenTable:
    """Per-token facts the model reads: time, bars, special ids and optional constraint masks.

    The caller (train/ or sample/) builds it from `aurl.tokens.vocab`, e.g.
    `TokenTable(time_advance=vocab.time_advance_table(), bar_start=vocab.bar_start_table(),
    bar_steps=vocab.bar_steps_table())`.

    Attributes:
        time_advance: (V,) int, grid steps each token moves time forward (a TimeShift k gives k).
        bar_start: (V,) bool, True for the token(s) that start a bar.
        bar_steps: (V,) int, bar length in grid steps set by a time-signature token, 0 for others.
        pad_id, bos_id, eos_id, mask_id: the special ids (MASK is the word-dropout token).
        steps_per_beat: grid steps per beat (8 on a 32nd-note grid).
        default_bar_steps: bar length before any time-signature token (32 = 4/4 at 8 steps a beat).
        note_on_start: id of the NoteOn token of MIDI pitch 0 (pitch p is note_on_start + p), -1 for a
            vocabulary without them; the model's shared pitch rows need it.
        forbidden: (V,) bool or None, tokens a model should never predict inside a piece; the
            constraint loss penalises the probability mass put on them. None: PAD, BOS and MASK.
        follow: (V, V) bool or None, `follow[a, b]` is True when token b may follow token a
            (a first-order view of the grammar); None switches the grammar term off.
    """

    time_advance: np.ndarray
    bar_start: np.ndarray
    bar_steps: np.ndarray
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    mask_id: int = 3
    steps_per_beat: int = 8
    default_bar_steps: int = 32
    note_on_start: int = -1
    forbidden: np.ndarray | None = field(default=None)
    follow: np.ndarray | None = field(default=None)

    def __post_init__(self) -> None:
        size = len(self.time_advance)
        for name in ("bar_start", "bar_steps", "forbidden"):
            value = getattr(self, name)
            if value is not None and np.shape(value) != (size,):
                raise ConfigError(
                    f"token table {name} has shape {np.shape(value)}; expected ({size},) like time_advance"
                )
        if self.follow is not None and np.shape(self.follow) != (size, size):
            raise ConfigError(
                f"token table follow has shape {np.shape(self.follow)}; expected ({size}, {size})"
            )
        ids = (self.pad_id, self.bos_id, self.eos_id, self.mask_id)
        if not all(0 <= i < size for i in ids):
            raise ConfigError(f"special ids {ids} must lie in 0..{size - 1}; check the token table")
        if not (self.note_on_start == -1 or 0 <= self.note_on_start <= size - N_PITCHES):
            raise ConfigError(
                f"token table note_on_start {self.note_on_start} leaves no room for {N_PITCHES} NoteOn ids "
                f"in a vocabulary of {size}"
            )
        if np.any(np.asarray(self.time_advance) < 0) or self.steps_per_beat < 1 or self.default_bar_steps < 1:
            raise ConfigError(
                "token table time values must be >= 0 and steps_per_beat, default_bar_steps >= 1"
            )

    @property
    def vocab_size(self) -> int:
        """V, the number of token ids."""
        return len(self.time_advance)

    @classmethod
    def plain(cls, vocab_size: int) -> TokenTable:
        """A table with no timing facts: every beat feature stays 0. For tests and parameter counts."""
        log.warning("model built without a token table: beat-aware positions are off")
        zeros = np.zeros(vocab_size, np.int64)
        return cls(time_advance=zeros, bar_start=zeros.astype(bool), bar_steps=zeros)

    def forbidden_mask(self) -> np.ndarray:
        """(V,) bool: the given `forbidden`, else PAD, BOS and MASK."""
        if self.forbidden is not None:
            return np.asarray(self.forbidden, bool)
        mask = np.zeros(self.vocab_size, bool)
        mask[[self.pad_id, self.bos_id, self.mask_id]] = True
        return mask

    def tensors(self) -> dict[str, Tensor]:
        """The arrays as tensors (int64 / bool), named as in the saved weights file."""
        out = {
            "time_advance": torch.as_tensor(np.asarray(self.time_advance, np.int64)),
            "bar_start": torch.as_tensor(np.asarray(self.bar_start, bool)),
            "bar_steps": torch.as_tensor(np.asarray(self.bar_steps, np.int64)),
            "forbidden": torch.as_tensor(self.forbidden_mask()),
        }
        if self.follow is not None:
            out["follow"] = torch.as_tensor(np.asarray(self.follow, bool))
        return out

    def scalars(self) -> dict[str, int]:
        """The integer fields, for JSON metadata."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.type == "int"}

    @classmethod
    def from_parts(cls, scalars: dict[str, Any], tensors: dict[str, Tensor]) -> TokenTable:
        """Rebuild a table from `scalars()` and `tensors()` (as read back from a weights file)."""
        follow = tensors["follow"].numpy() if "follow" in tensors else None
        ints = {k: int(v) for k, v in scalars.items()}
        return cls(
            time_advance=tensors["time_advance"].numpy(),
            bar_start=tensors["bar_start"].numpy(),
            bar_steps=tensors["bar_steps"].numpy(),
            forbidden=tensors["forbidden"].numpy(),
            follow=follow,
            **ints,  # type: ignore[arg-type]
        )
