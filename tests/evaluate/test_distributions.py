import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aurl.evaluate.distributions import (
    frechet_distance,
    frechet_feature_distance,
    kl_divergence,
    overlap_area,
    pairwise_distances,
    shared_bandwidth,
)

RNG = np.random.default_rng(7)


def test_pairwise_distances_intra_and_inter() -> None:
    a = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]])
    assert sorted(pairwise_distances(a).tolist()) == pytest.approx([1.0, math.sqrt(18), 5.0])
    assert pairwise_distances(np.array([1.0, 4.0]), np.array([0.0])).tolist() == [1.0, 4.0]


def test_overlap_and_divergence_of_equal_and_disjoint_samples() -> None:
    a = RNG.normal(0, 1, 400)
    assert overlap_area(a, a) == pytest.approx(1.0, abs=1e-9)
    assert kl_divergence(a, a) == pytest.approx(0.0, abs=1e-9)
    far = RNG.normal(50, 1, 400)
    assert overlap_area(a, far) < 1e-3
    assert kl_divergence(a, far) > 10


def test_overlap_of_two_shifted_normals_matches_theory() -> None:
    # two unit normals one sigma apart overlap by 2 * Phi(-1/2) = 0.617; KL = 1/2 nat
    a, b = RNG.normal(0, 1, 20000), RNG.normal(1, 1, 20000)
    assert overlap_area(a, b) == pytest.approx(0.617, abs=0.02)
    assert kl_divergence(a, b) == pytest.approx(0.5, abs=0.06)


def test_constant_and_empty_samples() -> None:
    assert overlap_area(np.ones(5), np.ones(7)) == 1.0 and kl_divergence(np.ones(5), np.ones(7)) == 0.0
    assert overlap_area(np.ones(5), np.full(5, 2.0)) < 0.01
    assert math.isnan(overlap_area(np.zeros(0), np.ones(3))) and math.isnan(
        kl_divergence(np.ones(3), np.zeros(0))
    )
    assert shared_bandwidth(np.ones(1), np.ones(3)) == 0.0


def test_one_bandwidth_for_both_samples_ignores_the_gap_between_them() -> None:
    a, b = RNG.normal(0, 1, 500), RNG.normal(5, 1, 500)
    # Scott's rule on the spread within each sample (about 1), not on the pooled spread (about 2.7)
    assert shared_bandwidth(a, b) == pytest.approx(1000**-0.2, rel=0.1)
    assert shared_bandwidth(a, b) == pytest.approx(shared_bandwidth(b, a))


def test_samples_of_one_distribution_with_an_atom_overlap_almost_fully() -> None:
    # Like most features of real music, mostly one value with a few exceptions: 98% zeros. The small
    # sample happens to hold only zeros; a bandwidth per sample gave it a kernel six times narrower
    # than the large sample's and an overlap near 0.3.
    def draw(n: int, exceptions: int) -> np.ndarray:
        x = np.zeros(n)
        x[:exceptions] = RNG.uniform(0.01, 0.1, exceptions)
        return x

    assert overlap_area(draw(400, 8), draw(40, 0)) > 0.95
    assert overlap_area(draw(400, 8), draw(400, 8)) > 0.95
    assert overlap_area(draw(400, 8), draw(40, 0) + 0.5) < 0.05


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(-100, 100), min_size=2, max_size=30),
    st.lists(st.floats(-100, 100), min_size=2, max_size=30),
)
def test_overlap_is_a_symmetric_share(a, b) -> None:
    oa = overlap_area(np.array(a), np.array(b))
    assert -1e-9 <= oa <= 1 + 1e-9
    assert oa == pytest.approx(overlap_area(np.array(b), np.array(a)), abs=1e-9)
    assert kl_divergence(np.array(a), np.array(b)) >= 0


def test_frechet_distance_of_a_set_with_itself_is_zero() -> None:
    x = RNG.normal(size=(200, 6)) @ RNG.normal(size=(6, 6))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)
    distance, used = frechet_feature_distance(x, x)
    assert distance == pytest.approx(0.0, abs=1e-8) and used.all()


def test_frechet_distance_of_shifted_gaussians() -> None:
    x, y = RNG.normal(size=(20000, 3)), RNG.normal(size=(20000, 3)) + np.array([3.0, 0.0, 0.0])
    assert frechet_distance(x, y) == pytest.approx(9.0, rel=0.03)
    wide = RNG.normal(size=(20000, 1)) * 3.0  # same mean, sigma 3 vs 1: (3 - 1)^2 = 4
    assert frechet_distance(RNG.normal(size=(20000, 1)), wide) == pytest.approx(4.0, rel=0.05)


def test_feature_distance_skips_undefined_and_constant_features() -> None:
    x, y = RNG.normal(size=(50, 3)), RNG.normal(size=(40, 3))
    x[3, 1] = np.nan
    y[:, 2] = 1.0
    distance, used = frechet_feature_distance(x, y)
    assert used.tolist() == [True, False, False] and distance >= 0
    assert math.isnan(frechet_feature_distance(x[:1], y)[0])
