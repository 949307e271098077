"""The loss framework: each term on cases with known answers, the schedules and the balancer."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from aurl.config import ModelConfig
from aurl.models import losses as L
from aurl.models.vae import kl_per_dim


def test_reconstruction_ignores_padding_and_smooths_labels() -> None:
    logits = torch.randn(2, 5, 11)
    targets = torch.randint(0, 11, (2, 5))
    valid = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    want = F.cross_entropy(logits[valid], targets[valid])
    assert L.reconstruction(logits, targets, valid) == pytest.approx(float(want), rel=1e-6)
    garbage = targets.clone()
    garbage[0, 3:] = 7
    assert L.reconstruction(logits, garbage, valid) == pytest.approx(float(want), rel=1e-6)
    assert L.reconstruction(logits, targets, valid, 0.1) != pytest.approx(float(want), rel=1e-3)


def test_kl_is_zero_at_the_prior_and_free_bits_floor_it() -> None:
    mu, logvar = torch.zeros(3, 2, 4), torch.zeros(3, 2, 4)
    assert torch.equal(kl_per_dim(mu, logvar), torch.zeros(3, 2, 4))
    rows = torch.ones(3, 2, dtype=torch.bool)
    measured, penalised = L.kl_free_bits(kl_per_dim(mu, logvar), rows, 0.5, torch.tensor(12.0))
    assert measured == 0.0
    assert penalised == pytest.approx(6 * 4 * 0.5 / 12)  # 6 rows x 4 dims x 0.5 nats over 12 tokens
    kl = kl_per_dim(torch.full((3, 2, 4), 2.0), logvar)  # 2 nats per dim, above the floor
    measured, penalised = L.kl_free_bits(kl, rows, 0.5, torch.tensor(12.0))
    assert measured == penalised == pytest.approx(6 * 4 * 2.0 / 12)


def test_free_bits_stop_the_gradient_below_the_floor() -> None:
    mu = torch.full((2, 1, 3), 0.1, requires_grad=True)
    rows = torch.ones(2, 1, dtype=torch.bool)
    _, penalised = L.kl_free_bits(kl_per_dim(mu, torch.zeros(2, 1, 3)), rows, 1.0, torch.tensor(2.0))
    penalised.backward()
    assert torch.equal(mu.grad, torch.zeros_like(mu))


def test_adversarial_losses() -> None:
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    assert L.hinge_d(real, fake) == pytest.approx((0 + 0.5) / 2 + (0 + 1.0) / 2)
    assert L.hinge_g(fake) == pytest.approx(1.0)
    assert L.non_saturating_d(real, fake) == pytest.approx(
        float(F.softplus(-real).mean() + F.softplus(fake).mean())
    )
    assert L.non_saturating_g(torch.tensor([0.0])) == pytest.approx(math.log(2))


def test_feature_matching_is_zero_for_equal_statistics() -> None:
    f = torch.randn(2, 5, 3)
    m = torch.ones(2, 5, dtype=torch.bool)
    assert L.feature_matching([(f, m)], [(f.flip(1), m)]) == pytest.approx(0.0, abs=1e-6)
    assert L.feature_matching([(f, m)], [(f + 1.0, m)]) == pytest.approx(1.0)


def test_constraint_terms_measure_mass_where_it_must_not_be() -> None:
    probs = torch.tensor([[[0.5, 0.25, 0.25, 0.0]]])  # (1, 1, 4)
    valid = torch.ones(1, 1, dtype=torch.bool)
    assert L.forbidden_mass(probs, torch.tensor([True, False, False, False]), valid) == pytest.approx(0.5)
    follow = torch.tensor([[False, True, True, True]] * 4)
    assert L.grammar_mass(probs, torch.tensor([[2]]), follow, valid) == pytest.approx(0.5)
    advance = torch.tensor([0, 4, 12, 0])  # token 2 jumps 12 steps from step 28 of a 32-step bar
    over = L.bar_overflow(probs, torch.tensor([[28]]), torch.tensor([[32]]), advance, valid)
    assert over == pytest.approx(0.25 * (12 - 4) / 32)


def test_schedules() -> None:
    c = ModelConfig.preset("tiny", beta=2.0, kl_warmup_steps=100, adv_weight=0.5, adv_warmup_steps=10)
    assert L.beta_at(c, 0) == 0.0 and L.beta_at(c, 50) == 1.0 and L.beta_at(c, 10**6) == 2.0
    assert L.beta_at(c, None) == 2.0
    cyc = c.model_copy(update={"kl_schedule": "cyclical", "kl_cycles": 2})
    assert [L.beta_at(cyc, s) for s in (0, 25, 50, 99, 100, 125, 250)] == [0.0, 1.0, 2.0, 2.0, 0.0, 1.0, 2.0]
    assert L.adv_weight_at(c, 5) == 0.25 and L.adv_weight_at(c, None) == 0.5
    assert L.beta_at(c.model_copy(update={"kl_schedule": "constant"}), 0) == 2.0


def test_uncertainty_balancer_learns_log_variances() -> None:
    balancer = L.LossBalancer(("a", "b"), "uncertainty")
    a, b = torch.tensor(4.0), torch.tensor(0.5)
    total = balancer({"a": (a, 1.0), "b": (b, 2.0)}, [(torch.tensor(3.0), 0.1)])
    assert total.item() == pytest.approx(4.0 + 2 * 0.5 + 0.3)  # s = 0 at the start
    opt = torch.optim.SGD(balancer.parameters(), lr=0.1)
    for _ in range(300):
        opt.zero_grad()
        balancer({"a": (a, 1.0), "b": (b, 1.0)}, []).backward()
        opt.step()
    # At the optimum exp(s) equals the term: a larger loss gets a smaller weight.
    assert balancer.log_vars["a"].item() == pytest.approx(math.log(4.0), abs=0.05)
    assert balancer.log_vars["b"].item() == pytest.approx(math.log(0.5), abs=0.05)
    fixed = L.LossBalancer(("a",), "fixed")
    assert list(fixed.parameters()) == [] and float(fixed({"a": (a, 0.5)}, [])) == 2.0
