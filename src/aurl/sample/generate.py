"""Batched, KV-cached sampling of token ids from any `Decoder`, under the grammar and constraints.

Every row starts from BOS (or a primer's tokens without their EOS) and draws one token per step:
logits of the last position -> constraint mask (-inf where not allowed) -> logits processors ->
softmax -> a draw on the CPU with one uniform number from the row's own `torch.Generator`. Rows
that end leave the batch (`Decoder.reorder`, and their history with them), so the batch shrinks
instead of carrying finished rows. The same seed and settings give the same ids.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from aurl.models import Latent
from aurl.sample.constraints import ConstraintSet
from aurl.sample.decoder import Decoder
from aurl.sample.processors import LogitsProcessor, apply_processors
from aurl.sample.rows import Row
from aurl.sample.stopping import StopRule
from aurl.tokens import vocab

ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class Generated:
    """One generated piece.

    Attributes:
        ids: (T,) int64 token ids from BOS to EOS (primer included).
        log_prob: sum of the new tokens' log-probabilities under the constrained model.
        new_tokens: tokens after the primer (or BOS), an EOS added after closing included.
        ended_by: "eos" (the model ended it), "stop" (the stopping rule) or "budget" (max_tokens).
    """

    ids: np.ndarray
    log_prob: float
    new_tokens: int
    ended_by: str

    @classmethod
    def of(cls, row: Row) -> Generated:
        return cls(row.ids(), row.log_prob, row.new_length, row.ended_by)


def row_generators(seed: int, num: int, stream: int = 0) -> list[torch.Generator]:
    """One CPU generator per row, seeded from (seed, row, stream): row i draws the same numbers
    whatever the batch size. `stream` separates uses (0: tokens, 1: latent draws)."""
    states = [np.random.SeedSequence([seed, i, stream]).generate_state(1, np.uint64)[0] for i in range(num)]
    return [torch.Generator().manual_seed(int(s)) for s in states]


def prompt_of(primer: np.ndarray | None) -> np.ndarray:
    """The tokens generation starts from: BOS, or the primer without trailing EOS and PAD."""
    if primer is None:
        return np.array([vocab.BOS], np.int64)
    ids = np.asarray(primer, np.int64).ravel()
    end = len(ids)
    while end and ids[end - 1] in (vocab.EOS, vocab.PAD):
        end -= 1
    ids = ids[:end]
    return ids if len(ids) and ids[0] == vocab.BOS else np.concatenate([[vocab.BOS], ids]).astype(np.int64)


# Sampling never needs gradients: inference mode skips autograd's bookkeeping on each of the few
# dozen small tensor operations per token (5-7% of a small model's batch-1 time through ONNX).
@torch.inference_mode()
def generate(
    decoder: Decoder,
    *,
    num: int,
    max_tokens: int,
    processors: Sequence[LogitsProcessor] = (),
    constraints: ConstraintSet | None = None,
    seed: int = 0,
    primer: np.ndarray | None = None,
    z: Latent | None = None,
    stop: StopRule | None = None,
    on_progress: ProgressCallback | None = None,
    shared_seed: bool = False,
) -> list[Generated]:
    """Sample `num` pieces in one batch; see the module docstring.

    Args:
        decoder: the model.
        num: pieces (batch rows).
        max_tokens: most new tokens per piece.
        processors: logits processors, applied in order after the constraint mask.
        constraints: grammar and musical constraints (default: the grammar alone).
        seed: the random seed; row i uses `row_generators(seed, num)[i]`.
        primer: token ids to continue (with or without EOS); None starts from BOS.
        z: latent with one row per piece (vae modes); None decodes from the prior mean.
        stop: the stopping rule (default: the token budget alone).
        on_progress: called as on_progress(step, max_tokens) after every step.
        shared_seed: every row draws from the same random stream (for interpolation, so that the
            pieces differ by their latents alone).

    Raises:
        TokenizeError: the primer breaks the token grammar.
    """
    constraints = constraints or ConstraintSet()
    stop = stop or StopRule()
    prompt = prompt_of(primer)
    first = Row.start(prompt)
    rows = [first] + [first.copy() for _ in range(num - 1)]
    if shared_seed:
        generators = [row_generators(seed, 1)[0] for _ in range(num)]
    else:
        generators = row_generators(seed, num)
    history = torch.zeros(num, len(prompt) + max_tokens, dtype=torch.long)  # one row per active row
    history[:, : len(prompt)] = torch.as_tensor(prompt)
    active = list(range(num))
    logits, cache = decoder.step(history[:, : len(prompt)], decoder.start(num, z))
    for step in range(max_tokens):
        length = len(prompt) + step
        tokens, log_probs = _draw(logits[:, -1], [rows[i] for i in active], processors, constraints,
                                  history[:, :length], [generators[i] for i in active])  # fmt: skip
        history[:, length] = tokens
        for i, token, log_prob in zip(active, tokens.tolist(), log_probs.tolist(), strict=True):
            rows[i].push(token, log_prob, stop, max_tokens)
        if on_progress is not None:
            on_progress(step + 1, max_tokens)
        keep = [j for j, i in enumerate(active) if not rows[i].done]
        if not keep:
            break
        if len(keep) < len(active):
            index = torch.tensor(keep, dtype=torch.long)
            cache, history = decoder.reorder(cache, index), history[index]
            active = [active[j] for j in keep]
        logits, cache = decoder.step(history[:, length : length + 1], cache)
    return [Generated.of(row) for row in rows]


def generate_ids(
    decoder: Decoder,
    *,
    num: int,
    max_tokens: int,
    processors: Sequence[LogitsProcessor] = (),
    constraints: ConstraintSet | None = None,
    seed: int = 0,
    primer: np.ndarray | None = None,
    z: Latent | None = None,
    stop: StopRule | None = None,
) -> list[np.ndarray]:
    """The token ids of `generate(...)`'s pieces: (T,) int64 each, BOS to EOS."""
    pieces = generate(
        decoder, num=num, max_tokens=max_tokens, processors=processors, constraints=constraints,
        seed=seed, primer=primer, z=z, stop=stop,
    )  # fmt: skip
    return [piece.ids for piece in pieces]


def masked_logits(logits: Tensor, rows: Sequence[Row], constraints: ConstraintSet) -> Tensor:
    """Float32 CPU logits (B, V) with -inf wherever a row's constraint mask forbids the token."""
    masks = np.stack([constraints.mask(row.state, row.closing) for row in rows])
    return torch.where(torch.from_numpy(masks), logits.float().cpu(), float("-inf"))


def draw(probs: Tensor, generators: Sequence[torch.Generator]) -> Tensor:
    """One token per row of probs (B, V) (non-negative, each row's sum positive): the inverse of the
    row's cumulative distribution at one uniform number from its own generator. A token of
    probability 0 is never drawn. One random number per token, where `torch.multinomial` draws
    one per vocabulary entry: a third of the time at batch 1."""
    cdf = probs.cumsum(-1, dtype=torch.float64)
    # Float64 uniforms are multiples of 2**-53 below 1, so u * total rounds to less than the total:
    # the first entry of the cumulative sum above it is a token of positive probability.
    u = torch.cat([torch.rand(1, generator=g, dtype=torch.float64) for g in generators])
    return torch.searchsorted(cdf, u[:, None] * cdf[:, -1:], right=True)[:, 0]


def _draw(
    logits: Tensor,
    rows: Sequence[Row],
    processors: Sequence[LogitsProcessor],
    constraints: ConstraintSet,
    history: Tensor,
    generators: Sequence[torch.Generator],
) -> tuple[Tensor, Tensor]:
    """(B,) tokens, one per row, and their log-probabilities under the constrained (masked) model."""
    masked = masked_logits(logits, rows, constraints)
    tokens = draw(apply_processors(processors, masked, history).softmax(-1), generators)
    return tokens, masked.log_softmax(-1).gather(-1, tokens[:, None])[:, 0]
