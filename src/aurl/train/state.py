"""The counters of a run that a checkpoint must carry besides tensors and RNG states."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass
class TrainState:
    """Where a run stands. Every field is JSON-able; `to_json`/`from_json` round-trip it.

    Attributes:
        step: optimizer steps taken.
        epoch, index: the next training micro-batch (`Batches.batch(epoch, index, ...)`); the data
            position is independent of `step`, so a roll-back moves on past the bad batches.
        tokens: training tokens seen (all ranks).
        best_val: lowest validation loss so far (inf before the first evaluation); best_step its step.
        val_loss: the latest validation loss, and val_step the step it was measured at.
        evals_since_best: evaluations without improvement, for early stopping.
        lr_scale: learning-rate multiplier lowered by each roll-back.
        rollbacks, bad_streak: roll-backs done; bad steps in a row.
        skipped: steps whose update was skipped in total.
        elapsed_s: training seconds of earlier sessions of this run.
    """

    step: int = 0
    epoch: int = 0
    index: int = 0
    tokens: int = 0
    best_val: float = math.inf
    best_step: int = -1
    val_loss: float | None = None
    val_step: int = -1
    evals_since_best: int = 0
    lr_scale: float = 1.0
    rollbacks: int = 0
    bad_streak: int = 0
    skipped: int = 0
    elapsed_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """The fields, with infinity written as None."""
        return {k: (None if isinstance(v, float) and math.isinf(v) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainState:
        """Read what `to_json` wrote; unknown keys are ignored, missing ones keep their defaults."""
        state = cls()
        for f in fields(cls):
            if f.name in data:
                value = data[f.name]
                if value is None and f.name == "best_val":
                    value = math.inf
                setattr(state, f.name, value)
        return state
