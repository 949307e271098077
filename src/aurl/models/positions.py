"""Beat-aware positions: bar, beat and sub-beat of every token from the token table, and rotary angles.

The beat features are a running state over the token stream (time in grid steps, bar index, where
the current bar began, its length from the last time-signature token), so incremental decoding
carries a `BeatState` and picks up exactly where the previous call stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import astuple, dataclass

import torch
from torch import Tensor, nn

N_PHASES = 16  # buckets of the bar fraction: tells the last beat of 3/4 from the third beat of 4/4
MAX_BEATS = 32  # beats per bar kept apart by the embedding (16/2 is the longest bar: 32 beats)


@dataclass(frozen=True)
class BeatState:
    """Where a batch of token streams stands after the tokens seen so far; every field is (B,) int64.

    Attributes:
        time: grid steps since the start.
        bar: bars started so far (tokens before the first bar line are bar 0).
        bar_time: time (grid steps) at which the current bar started.
        bar_len: the current bar length in grid steps (from the last time-signature token).
    """

    time: Tensor
    bar: Tensor
    bar_time: Tensor
    bar_len: Tensor

    @classmethod
    def start(cls, batch: int, default_bar_steps: int, device: torch.device | None = None) -> BeatState:
        """The state before the first token."""
        zeros = torch.zeros(batch, dtype=torch.long, device=device)
        return cls(zeros, zeros, zeros, torch.full_like(zeros, default_bar_steps))

    def map(self, fn: Callable[[Tensor], Tensor]) -> BeatState:
        """Apply fn to each field."""
        return BeatState(fn(self.time), fn(self.bar), fn(self.bar_time), fn(self.bar_len))

    def copy_(self, source: BeatState) -> None:
        """Overwrite these tensors in place with `source`'s values (a CUDA graph reads them by address)."""
        for mine, theirs in zip(astuple(self), astuple(source), strict=True):
            mine.copy_(theirs)


@dataclass(frozen=True)
class BeatFeatures:
    """Per-token beat position, each (B, T) int64, describing the stream just after that token."""

    time: Tensor
    bar: Tensor
    pos_in_bar: Tensor  # grid steps since the current bar line
    bar_len: Tensor

    def last(self) -> BeatState:
        """The state after the last token, to continue from."""
        bar_time = self.time[:, -1] - self.pos_in_bar[:, -1]
        return BeatState(self.time[:, -1], self.bar[:, -1], bar_time, self.bar_len[:, -1])


def beat_features(ids: Tensor, tables: dict[str, Tensor], state: BeatState) -> BeatFeatures:
    """Running time, bar index and position in the bar for each token, continuing from `state`.

    Args:
        ids: (B, T) token ids.
        tables: `time_advance` (V,) int64, `bar_start` (V,) bool and `bar_steps` (V,) int64.
        state: where each stream stood before `ids` (`BeatState.start` for a fresh one).
    """
    time = state.time[:, None] + torch.cumsum(tables["time_advance"][ids], dim=1)  # (B, T)
    is_bar = tables["bar_start"][ids]
    bar = state.bar[:, None] + torch.cumsum(is_bar.long(), dim=1)
    # time never decreases, so the latest bar line's time is a running maximum.
    bar_time = torch.where(is_bar, time, state.bar_time[:, None]).cummax(dim=1).values
    steps = tables["bar_steps"][ids]
    arange = torch.arange(ids.shape[1], device=ids.device).expand_as(ids)
    last_ts = torch.where(steps > 0, arange, -1).cummax(dim=1).values
    bar_len = torch.where(last_ts >= 0, steps.gather(1, last_ts.clamp(min=0)), state.bar_len[:, None])
    return BeatFeatures(time, bar, time - bar_time, bar_len)


class BeatEmbedding(nn.Module):
    """Sum of learned embeddings of bar index (cyclic), beat in bar, step in beat and bar phase.

    Args:
        d_model: D, the width of the embeddings.
        steps_per_beat: grid steps per beat.
        bar_period: bar indices are taken modulo this, so 4-, 8- and 16-bar phrase cycles stay visible.
    """

    def __init__(self, d_model: int, steps_per_beat: int, bar_period: int) -> None:
        super().__init__()
        self.steps_per_beat, self.bar_period = steps_per_beat, bar_period
        self.bar = nn.Embedding(bar_period, d_model)
        self.beat = nn.Embedding(MAX_BEATS, d_model)
        self.sub = nn.Embedding(steps_per_beat, d_model)
        self.phase = nn.Embedding(N_PHASES, d_model)
        for table in (self.bar, self.beat, self.sub, self.phase):
            nn.init.normal_(table.weight, std=0.01)

    def forward(self, f: BeatFeatures) -> Tensor:
        """(B, T, D) position embedding of the features."""
        beat = torch.div(f.pos_in_bar, self.steps_per_beat, rounding_mode="floor").clamp(max=MAX_BEATS - 1)
        sub = f.pos_in_bar % self.steps_per_beat
        phase = (f.pos_in_bar * N_PHASES // f.bar_len.clamp(min=1)).clamp(0, N_PHASES - 1)
        return self.bar(f.bar % self.bar_period) + self.beat(beat) + self.sub(sub) + self.phase(phase)


class Rotary(nn.Module):
    """Rotary position embedding (GPT-NeoX halves layout) over the token index.

    Args:
        head_dim: per-head width, even.
        base: the wavelength base (10000 in RoFormer).
    """

    def __init__(self, head_dim: int, base: float) -> None:
        super().__init__()
        inv = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
        self.inv_freq: Tensor
        self.register_buffer("inv_freq", inv.float(), persistent=False)

    def angles(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        """cos and sin, each (T, head_dim), for float positions (T,) (block centres may be fractional)."""
        freqs = positions.float()[:, None] * self.inv_freq[None, :]
        freqs = torch.cat([freqs, freqs], dim=-1)
        return freqs.cos(), freqs.sin()


def rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Apply rotary angles to x (..., T, head_dim) with cos, sin (T, head_dim)."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return x * cos + torch.cat([-x2, x1], dim=-1) * sin
