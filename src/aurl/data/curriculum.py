"""The sequence-length curriculum: how many tokens a sequence may hold at each training step."""

from __future__ import annotations

import bisect
import math

from aurl.config.data import DataConfig


def curriculum_stages(config: DataConfig) -> list[tuple[int, int]]:
    """The schedule as (first step, seq_len) stages, the first at step 0, lengths as configured.

    - `config.curriculum` given: those stages.
    - `config.curriculum_start` given: the length doubles from it until it reaches `seq_len`, each
      doubling after an equal share of `curriculum_steps` (256 -> 2048 over 30,000 steps: 256 from
      step 0, 512 from 10,000, 1024 from 20,000, 2048 from 30,000). Doubling keeps the number of
      distinct batch shapes small.
    - neither: one stage, `seq_len` from step 0.
    """
    if config.curriculum:
        return list(config.curriculum)
    if config.curriculum_start is None:
        return [(0, config.seq_len)]
    start, end, steps = config.curriculum_start, config.seq_len, config.curriculum_steps
    doublings = max(0, math.ceil(math.log2(end / start)))
    if doublings == 0:
        return [(0, end)]
    stages = {math.ceil(k * steps / doublings): min(start * 2**k, end) for k in range(doublings)}
    stages[steps] = end  # when steps < doublings, a later length replaces an earlier one of the same step
    return sorted(stages.items())


def seq_len_at(step: int, config: DataConfig) -> int:
    """Most tokens per sequence at optimizer step `step` (0-based) under the configured curriculum."""
    stages = curriculum_stages(config)
    firsts = [first for first, _ in stages]
    return stages[max(0, bisect.bisect_right(firsts, step) - 1)][1]
