"""Logits processors: small transforms of next-token scores, each validated when it is built.

A processor maps logits (B, V) and the tokens so far (B, T) to new logits (B, V) and never changes
its input. Masked tokens carry -inf; every processor keeps them at -inf and leaves at least one
finite entry in a row that had one. `build_processors` composes them in the usual order:
repetition penalty, temperature, top-k, top-p; with `timing = "model"` they are wrapped in
`ModelTiming`, which hands the choice among time shifts (how far time moves on) back to the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch
from torch import Tensor

from aurl.config import SampleConfig
from aurl.errors import ConfigError
from aurl.tokens.vocab import TIME_SHIFT, VOCAB_SIZE


class LogitsProcessor(Protocol):
    """A transform of next-token scores."""

    def __call__(self, logits: Tensor, history: Tensor) -> Tensor:
        """New logits (B, V) from logits (B, V) and the ids so far, history (B, T) int64."""
        ...


class Temperature:
    """Divide the logits by `value`: below 1 sharpens the distribution, above 1 flattens it.

    The argmax of every row stays where it was.

    Raises:
        ConfigError: value is not a positive finite number.
    """

    def __init__(self, value: float) -> None:
        if not (value > 0.0 and value < float("inf")):
            raise ConfigError(f"temperature {value} must be a positive number; try 0.8 to 1.2")
        self.value = float(value)

    def __call__(self, logits: Tensor, history: Tensor) -> Tensor:
        return logits if self.value == 1.0 else logits / self.value


class TopK:
    """Keep the k largest logits of each row (exactly k when k are finite) and set the rest to -inf.

    Raises:
        ConfigError: k < 1.
    """

    def __init__(self, k: int) -> None:
        if int(k) != k or k < 1:
            raise ConfigError(f"top-k {k} must be a whole number >= 1 (0 in the settings turns it off)")
        self.k = int(k)

    def __call__(self, logits: Tensor, history: Tensor) -> Tensor:
        k = min(self.k, logits.shape[-1])
        values, indices = logits.topk(k, dim=-1)  # ties broken by index: never more than k kept
        return torch.full_like(logits, float("-inf")).scatter(-1, indices, values)


class TopP:
    """Nucleus sampling: keep the smallest set of likeliest tokens whose probability reaches p.

    Raises:
        ConfigError: p is outside (0, 1].
    """

    def __init__(self, p: float) -> None:
        if not 0.0 < p <= 1.0:
            raise ConfigError(f"top-p {p} must lie in (0, 1]; 0.9 keeps the likeliest 90% of the mass")
        self.p = float(p)

    def __call__(self, logits: Tensor, history: Tensor) -> Tensor:
        if self.p >= 1.0:
            return logits
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.float().softmax(-1)
        # Drop a token when the likelier ones reach p; the likeliest has 0 before it, below p > 0,
        # so it always stays.
        drop = probs.cumsum(-1) - probs >= self.p
        return logits.scatter(-1, order, sorted_logits.masked_fill(drop, float("-inf")))


class RepetitionPenalty:
    """Make tokens seen in the last `window` tokens less likely (CTRL, Keskar et al. 2019).

    A seen token's positive logit is divided by `penalty`, a negative one multiplied by it.

    Raises:
        ConfigError: penalty < 1 or window < 1.
    """

    def __init__(self, penalty: float, window: int = 64) -> None:
        if not penalty >= 1.0:
            raise ConfigError(f"repetition penalty {penalty} must be >= 1 (1 is off); try 1.1 to 1.3")
        if window < 1:
            raise ConfigError(f"repetition window {window} must be >= 1 token")
        self.penalty, self.window = float(penalty), int(window)

    def __call__(self, logits: Tensor, history: Tensor) -> Tensor:
        if self.penalty == 1.0 or history.shape[-1] == 0:
            return logits
        recent = history[:, -self.window :]
        seen = logits.gather(-1, recent)
        penalised = torch.where(seen > 0, seen / self.penalty, seen * self.penalty)
        return logits.scatter(-1, recent, penalised)


class ModelTiming:
    """Apply `inner` to every token, then give the time shifts back the model's proportions.

    The time shifts together keep the share that `inner` gives them (whether time moves on now),
    but among themselves the model's own proportions (how far it moves), masked ones excepted; all
    other tokens keep what `inner` gives them. Why: truncation and low temperatures are there to cut
    unlikely pitches, but on the 32nd-note grid they also cut the rare durations (held notes, dotted
    and sixteenth-note figures), which leaves the rhythm plainer than the music the model learnt.
    The result is log-probabilities.
    """

    def __init__(self, inner: Sequence[LogitsProcessor]) -> None:
        self.inner = tuple(inner)
        self.other = torch.ones(VOCAB_SIZE, dtype=torch.bool)  # every token but the time shifts
        self.other[TIME_SHIFT.start : TIME_SHIFT.stop] = False

    def __call__(self, logits: Tensor, history: Tensor) -> Tensor:
        other = self.other.to(logits.device)
        shaped = apply_processors(self.inner, logits, history).float().log_softmax(-1)
        share = shaped.masked_fill(other, float("-inf")).logsumexp(-1, keepdim=True)
        # NaN in a row whose time shifts are all masked; such a row keeps them at -inf.
        model = logits.float().masked_fill(other, float("-inf")).log_softmax(-1) + share
        return torch.where(other, shaped, model.nan_to_num(nan=float("-inf")))


def build_processors(config: SampleConfig) -> list[LogitsProcessor]:
    """The processors the settings ask for, in application order (those that would do nothing left out)."""
    processors: list[LogitsProcessor] = []
    if config.repetition_penalty != 1.0:
        processors.append(RepetitionPenalty(config.repetition_penalty, config.repetition_window))
    if config.temperature != 1.0:
        processors.append(Temperature(config.temperature))
    if config.top_k:
        processors.append(TopK(config.top_k))
    if config.top_p < 1.0:
        processors.append(TopP(config.top_p))
    if config.timing == "model" and processors:
        return [ModelTiming(processors)]
    return processors


def apply_processors(processors: Sequence[LogitsProcessor], logits: Tensor, history: Tensor) -> Tensor:
    """Run `processors` in order over logits (B, V) with history (B, T)."""
    for processor in processors:
        logits = processor(logits, history)
    return logits
