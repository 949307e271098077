"""Which keys each query may see, for the three attention kinds, as integer arithmetic on positions.

- full: every earlier key (causal) or every key (bidirectional).
- sliding: windows of `window` tokens start every `window - overlap` tokens, so neighbouring windows
  share `overlap` tokens. A query attends inside the earliest window that contains it: causally it
  sees between `overlap + 1` and `window` tokens (itself included), bidirectionally the whole window.
  Up to `window` tokens this is full attention.
- hierarchical: a local sliding window of the `local` most recent tokens (bidirectional: `local - 1`
  on either side), plus one summary token (mean key and value) per block of `local` tokens. A causal
  query sees the summaries of the `n_global` latest blocks lying wholly in its past; a bidirectional
  one those of the `n_global` nearest blocks other than its own. Up to `local` tokens this is full
  attention.

Sliding and hierarchical attention run in query blocks that each read a fixed span of key blocks,
so memory grows linearly with the sequence length.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Geometry:
    """The visibility rule of one attention layer.

    Attributes:
        kind: "full", "sliding" or "hierarchical".
        causal: True in the decoder (a query never sees a later key).
        window, overlap: sliding window length and the tokens neighbouring windows share.
        local, n_global: hierarchical local window (also the summary block) and summaries per query.
    """

    kind: str
    causal: bool
    window: int = 512
    overlap: int = 128
    local: int = 256
    n_global: int = 64

    @property
    def block(self) -> int:
        """Query block length of the blocked computation."""
        return self.window - self.overlap if self.kind == "sliding" else self.local

    @property
    def n_prev(self) -> int:
        """Key blocks before the query's own block that its keys may come from."""
        return (self.window - 1) // self.block if self.kind == "sliding" else 1

    @property
    def n_next(self) -> int:
        """Key blocks after the query's own block that its keys may come from."""
        if self.causal:
            return 0
        return -(-self.window // self.block) - 1 if self.kind == "sliding" else 1

    def lo(self, qpos: Tensor) -> Tensor:
        """Lowest visible key position for each query position (int64, same shape)."""
        if self.kind == "full":
            return torch.zeros_like(qpos)
        if self.kind == "sliding":
            step = self.block
            first = torch.div(qpos + 1 - self.window + step - 1, step, rounding_mode="floor")
            return first.clamp(min=0) * step
        return (qpos - self.local + 1).clamp(min=0)

    def hi(self, qpos: Tensor) -> Tensor:
        """Highest visible key position for each query position (the query itself when causal)."""
        if self.causal:
            return qpos
        if self.kind == "full":
            return torch.full_like(qpos, torch.iinfo(torch.int64).max)
        if self.kind == "sliding":
            return self.lo(qpos) + self.window - 1
        return qpos + self.local - 1

    def local_allowed(self, qpos: Tensor, kpos: Tensor) -> Tensor:
        """(..., Tq, Tk) bool: key kpos (..., Tk) visible to query qpos (..., Tq) by the local rule."""
        q, k = qpos[..., :, None], kpos[..., None, :]
        return ((k >= self.lo(q)) & (k <= self.hi(q))) | (k == q)

    def summary_offsets(self) -> list[int]:
        """Block offsets (relative to the query's block) of the summaries a query block reads."""
        if self.causal:
            return list(range(-self.n_global, 0))
        half = self.n_global // 2
        return [o for o in range(-half, half + 1) if o != 0][: self.n_global]

    def keep_from(self, next_pos: int) -> int:
        """Oldest key position any query at or after `next_pos` can still see (for cache trimming)."""
        if self.kind == "full":
            return 0
        return int(self.lo(torch.tensor(next_pos)))
