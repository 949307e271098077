"""Beam search: deterministic, grammatical, and at least as likely as greedy decoding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from aurl.errors import ConfigError
from aurl.sample import ConstraintSet, StopRule, TopK, TorchDecoder, beam_search, generate
from aurl.sample.generate import masked_logits
from aurl.sample.rows import Row
from aurl.tokens import count_invalid, vocab


def replayed_log_prob(decoder: TorchDecoder, ids: np.ndarray, stop: StopRule, max_tokens: int) -> float:
    """The log-probability of a piece's new tokens, recomputed in one teacher-forced pass with the
    masks the grammar (and closing) gave at each position: an independent check of the search's sum."""
    logits, _ = decoder.step(torch.as_tensor(ids)[None], decoder.start(1))
    row, total = Row.start(ids[:1]), 0.0
    for t, token in enumerate(ids[1:].tolist()):
        if row.done:  # an EOS appended after closing was not drawn from the model
            assert token == vocab.EOS
            break
        log_probs = masked_logits(logits[:, t], [row], ConstraintSet()).log_softmax(-1)
        total += float(log_probs[0, token])
        row.push(token, float(log_probs[0, token]), stop, max_tokens)
    return total


@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_beam_search_is_at_least_as_likely_as_greedy(decoder: TorchDecoder, length_penalty: float) -> None:
    stop, budget = StopRule(bars=2), 200
    greedy = generate(decoder, num=1, max_tokens=budget, processors=[TopK(1)], stop=stop)[0]
    beam = beam_search(decoder, beams=4, max_tokens=budget, stop=stop, length_penalty=length_penalty)[0]
    assert count_invalid(beam.ids) == 0
    if length_penalty == 0.0:
        assert beam.log_prob >= greedy.log_prob - 1e-6
    else:  # ranked by log-probability per token
        assert beam.log_prob / beam.new_tokens >= greedy.log_prob / greedy.new_tokens - 1e-6
    for piece in (greedy, beam):
        replayed = replayed_log_prob(decoder, piece.ids, stop, budget)
        assert np.isclose(replayed, piece.log_prob, atol=1e-3), (replayed, piece.log_prob)


def test_one_beam_is_greedy_decoding(decoder: TorchDecoder) -> None:
    stop = StopRule(bars=2)
    greedy = generate(decoder, num=1, max_tokens=150, processors=[TopK(1)], stop=stop)[0]
    beam = beam_search(decoder, beams=1, max_tokens=150, stop=stop, length_penalty=0.0)[0]
    assert np.array_equal(beam.ids, greedy.ids)


def test_beam_search_returns_its_best_pieces_in_order(decoder: TorchDecoder) -> None:
    pieces = beam_search(
        decoder, beams=3, max_tokens=120, stop=StopRule(bars=1), num_return=3, length_penalty=0.0
    )
    assert len(pieces) == 3
    assert [p.log_prob for p in pieces] == sorted((p.log_prob for p in pieces), reverse=True)
    assert len({p.ids.tobytes() for p in pieces}) == 3
    again = beam_search(
        decoder, beams=3, max_tokens=120, stop=StopRule(bars=1), num_return=3, length_penalty=0.0
    )
    assert all(np.array_equal(a.ids, b.ids) for a, b in zip(pieces, again, strict=True))


@pytest.mark.parametrize(("beams", "num"), [(0, 1), (2, 3), (2, 0)])
def test_bad_beam_settings(decoder: TorchDecoder, beams: int, num: int) -> None:
    with pytest.raises(ConfigError):
        beam_search(decoder, beams=beams, max_tokens=10, num_return=num)


def test_log_probabilities_are_of_the_masked_model(decoder: TorchDecoder) -> None:
    piece = generate(decoder, num=1, max_tokens=40, seed=0)[0]
    logits, _ = decoder.step(torch.as_tensor(piece.ids)[None], decoder.start(1))
    unmasked = F.log_softmax(logits[0, :-1], -1).gather(1, torch.as_tensor(piece.ids[1:])[:, None]).sum()
    assert piece.log_prob >= float(unmasked) - 1e-4  # masking only moves mass onto allowed tokens
