"""Beam search over any `Decoder`, under the same grammar, constraints and stopping rule as sampling.

Hypotheses are scored by the sum of their tokens' log-probabilities under the constrained model;
finished ones are ranked by that sum divided by length ** length_penalty (length normalisation:
without it, beam search favours short pieces, down to the empty one). One beam always follows the
greedy path (the argmax continuation of greedy decoding), and the search ends only after it has
finished, so the returned piece ranks at least as high as greedy decoding's. The search is
deterministic: no seed is involved.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from aurl.errors import ConfigError
from aurl.models import Latent
from aurl.sample.constraints import ConstraintSet
from aurl.sample.decoder import Decoder
from aurl.sample.generate import Generated, ProgressCallback, masked_logits, prompt_of
from aurl.sample.rows import Row
from aurl.sample.stopping import StopRule


def normalised(row: Row, length_penalty: float) -> float:
    """A hypothesis' ranking score: log-probability / (new tokens) ** length_penalty."""
    return row.log_prob / max(1, row.new_length) ** length_penalty


@torch.inference_mode()  # as `generate`: no gradients, less work per small operation
def beam_search(
    decoder: Decoder,
    *,
    beams: int,
    max_tokens: int,
    constraints: ConstraintSet | None = None,
    stop: StopRule | None = None,
    primer: np.ndarray | None = None,
    z: Latent | None = None,
    length_penalty: float = 1.0,
    num_return: int = 1,
    on_progress: ProgressCallback | None = None,
) -> list[Generated]:
    """The `num_return` best pieces found with `beams` hypotheses, best first.

    Args:
        decoder: the model.
        beams: hypotheses kept per step (>= 1; 1 is greedy decoding).
        max_tokens: most new tokens per piece.
        constraints: grammar and musical constraints (default: the grammar alone).
        stop: the stopping rule (default: the token budget alone).
        primer: token ids to continue; None starts from BOS.
        z: latent with one row (vae modes).
        length_penalty: exponent of the length normalisation (0 ranks by plain log-probability).
        num_return: how many of the finished pieces to return (<= beams).
        on_progress: called as on_progress(step, max_tokens).

    Raises:
        ConfigError: beams < 1 or num_return outside 1..beams.
    """
    if beams < 1 or not 1 <= num_return <= beams:
        raise ConfigError(f"beam search needs beams >= 1 and 1 <= pieces <= beams, not {beams}, {num_return}")
    constraints = constraints or ConstraintSet()
    stop = stop or StopRule()
    prompt = prompt_of(primer)
    beam = _Beam([Row.start(prompt)], 0)
    finished: list[Row] = []
    logits, cache = decoder.step(torch.as_tensor(prompt)[None], decoder.start(1, z))
    for step in range(max_tokens):
        log_probs = masked_logits(logits[:, -1], beam.rows, constraints).log_softmax(-1)  # (H, V)
        beam, parents, done = _advance(beam, log_probs, beams, stop, max_tokens)
        finished += done
        if on_progress is not None:
            on_progress(step + 1, max_tokens)
        if not beam.rows or _settled(finished, beam, beams, length_penalty):
            break
        cache = decoder.reorder(cache, torch.tensor(parents, dtype=torch.long))
        logits, cache = decoder.step(torch.tensor([[r.tokens[-1]] for r in beam.rows]), cache)
    else:
        finished += beam.rows  # out of budget: every running hypothesis counts as it stands
    best = sorted(finished, key=lambda r: normalised(r, length_penalty), reverse=True)
    return [Generated.of(row) for row in best[:num_return]]


@dataclass
class _Beam:
    """The running hypotheses, and which of them is the greedy path (None once that one finished)."""

    rows: list[Row]
    greedy: int | None


def _advance(
    beam: _Beam, log_probs: torch.Tensor, beams: int, stop: StopRule, max_tokens: int
) -> tuple[_Beam, list[int], list[Row]]:
    """Extend every hypothesis by one token; keep the best `beams` running ones (and the greedy path).

    Returns:
        The new beam, the parent index of each of its rows, and the hypotheses that finished.
    """
    totals = torch.tensor([r.log_prob for r in beam.rows], dtype=log_probs.dtype)
    flat = (log_probs + totals[:, None]).flatten()
    top = flat.topk(min(2 * beams, int(torch.isfinite(flat).sum()))).indices.tolist()
    candidates = [divmod(index, log_probs.shape[1]) for index in top]
    greedy = None if beam.greedy is None else (beam.greedy, int(log_probs[beam.greedy].argmax()))
    if greedy is not None and greedy not in candidates:
        candidates.append(greedy)
    children = {}
    for parent, token in candidates:
        child = beam.rows[parent].copy()
        child.push(token, float(log_probs[parent, token]), stop, max_tokens)
        children[parent, token] = child
    finished = [child for child in children.values() if child.done]
    kept = [key for key in candidates if not children[key].done][:beams]
    if greedy is not None and not children[greedy].done and greedy not in kept:
        kept[-1:] = [greedy]  # the greedy path stays in the beam, so the search never does worse
    next_greedy = kept.index(greedy) if greedy in kept else None
    return _Beam([children[key] for key in kept], next_greedy), [parent for parent, _ in kept], finished


def _settled(finished: list[Row], beam: _Beam, beams: int, length_penalty: float) -> bool:
    """Stop once the greedy path has finished, `beams` pieces are finished and no running hypothesis
    ranks above the worst of them.

    Log-probabilities only fall as tokens are added, so with length_penalty 0 this is exact; with
    normalisation it is the usual heuristic (a long hypothesis can still climb a little).
    """
    if beam.greedy is not None or len(finished) < beams:
        return False
    ranked = sorted((normalised(r, length_penalty) for r in finished), reverse=True)
    best_running = max(normalised(r, length_penalty) for r in beam.rows)
    return best_running < ranked[beams - 1] or math.isclose(best_running, ranked[beams - 1])
