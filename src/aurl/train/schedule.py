"""The learning-rate schedule as a pure function of the step, so resuming needs no scheduler state."""

from __future__ import annotations

import math

from aurl.config.train import TrainConfig


def lr_factor(step: int, total_steps: int, config: TrainConfig) -> float:
    """Multiplier of `config.lr` for optimizer step `step` (0-based) of a run of `total_steps`.

    Linear warm-up from 1/(warmup+1) to 1 over `config.warmup_steps`, then cosine or linear decay to
    `config.min_lr_ratio` at `total_steps - 1` (constant: 1). Past the end the final factor holds.

    Args:
        step: the optimizer step about to be taken (0 for the first).
        total_steps: planned optimizer steps of the whole run (>= 1).
        config: warmup_steps, schedule and min_lr_ratio.
    """
    warmup = config.warmup_steps
    if step < warmup:
        return (step + 1) / (warmup + 1)
    if config.schedule == "constant":
        return 1.0
    span = max(total_steps - 1 - warmup, 1)
    progress = min(max((step - warmup) / span, 0.0), 1.0)
    floor = config.min_lr_ratio
    if config.schedule == "linear":
        return 1.0 - (1.0 - floor) * progress
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
