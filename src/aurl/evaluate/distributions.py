"""Comparing two sets of pieces feature by feature, and over all features at once.

- Overlapping area (OA) and Kullback–Leibler divergence (KLD) between two samples, each smoothed by
  a Gaussian kernel density estimate on a shared grid, with one bandwidth for both (Scott's rule on
  their pooled within-sample spread). One kernel matters for features whose values pile up on one
  number (most chorales have no empty beat): with a bandwidth per sample, the set whose values are
  all 0 gets a far narrower kernel than the set with a few exceptions, and the two near-identical
  distributions overlapped by 0.29 (the 369 training chorales against the 40 test chorales); with
  one, by 0.98.
- Yang & Lerch (2020, "On the evaluation of generative models in music"): for a feature, the
  distances between pieces inside one set (intra-set) and across the two sets (inter-set); a set
  that resembles the other has an intra-set distance distribution close to the inter-set one.
- `frechet_feature_distance`: the Fréchet distance between Gaussians fitted to the sets' vectors of
  symbolic features (standardised by the reference set), the FID recipe on hand-made features
  rather than on a network's embeddings.
"""

from __future__ import annotations

from typing import Final

import numpy as np

GRID_POINTS: Final = 1024
KERNEL_REACH: Final = 4.0  # kernel cut at this many bandwidths
MIN_BANDWIDTH_SHARE: Final = 0.05  # bandwidth floor, as a share of the pooled standard deviation
DENSITY_FLOOR: Final = 1e-10  # keeps KLD finite where the second density vanishes


def pairwise_distances(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """Euclidean distances between the rows of `a` and `b`, flattened.

    Args:
        a: (N,) values or (N, D) vectors.
        b: (M,) or (M, D); None for the intra-set distances of `a` (each pair once, N(N-1)/2 values).
    Returns:
        (N * M,) inter-set or (N(N-1)/2,) intra-set distances.
    """
    a = np.asarray(a, np.float64).reshape(len(a), -1)
    other = a if b is None else np.asarray(b, np.float64).reshape(len(b), -1)
    squared = (a**2).sum(1)[:, None] + (other**2).sum(1)[None, :] - 2.0 * a @ other.T
    distances = np.sqrt(np.maximum(squared, 0.0))
    if b is None:
        return distances[np.triu_indices(len(a), k=1)]
    return distances.reshape(-1)


def shared_bandwidth(a: np.ndarray, b: np.ndarray) -> float:
    """One kernel bandwidth for two samples: Scott's rule on their pooled within-sample spread.

    h = s_w x (n_a + n_b)^(-1/5), where s_w^2 pools each sample's variance about its own mean, so
    that a gap between the samples (what is being measured) does not widen the kernel. Floored at
    MIN_BANDWIDTH_SHARE of the pooled standard deviation so that constant samples still have a
    density; 0 only when every value of both samples is the same.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    squares = ((a - a.mean()) ** 2).sum() + ((b - b.mean()) ** 2).sum()
    within = np.sqrt(squares / max(len(a) + len(b) - 2, 1))
    floor = MIN_BANDWIDTH_SHARE * np.concatenate([a, b]).std()
    return float(max(within * (len(a) + len(b)) ** -0.2, floor))


def _densities(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, float] | None:
    """KDEs of two samples with one bandwidth, on one grid, by linear binning and convolution.

    None when every value of both samples is the same (there is no spread to scale a kernel by).
    """
    pooled = np.concatenate([a, b])
    width = shared_bandwidth(a, b)
    if width <= 0:
        return None
    lo, hi = pooled.min() - KERNEL_REACH * width, pooled.max() + KERNEL_REACH * width
    step = (hi - lo) / (GRID_POINTS - 1)
    half = max(int(np.ceil(KERNEL_REACH * width / step)), 1)
    offsets = np.arange(-half, half + 1) * step
    kernel = np.exp(-0.5 * (offsets / width) ** 2)
    kernel /= kernel.sum()
    out = []
    for x in (a, b):
        position = (x - lo) / step
        left = np.clip(np.floor(position).astype(np.int64), 0, GRID_POINTS - 2)
        right_share = position - left
        mass = np.bincount(left, 1.0 - right_share, GRID_POINTS) + np.bincount(
            left + 1, right_share, GRID_POINTS
        )
        density = np.convolve(mass, kernel, mode="same")
        out.append(density / (density.sum() * step))
    return out[0], out[1], step


def overlap_area(a: np.ndarray, b: np.ndarray) -> float:
    """Area under the minimum of the two samples' KDEs: 1 for identical samples, 0 for disjoint ones.

    NaN when a sample is empty; 1 when every value of both samples is the same.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if not len(a) or not len(b):
        return float("nan")
    found = _densities(a, b)
    if found is None:
        return 1.0
    p, q, step = found
    return float(np.minimum(p, q).sum() * step)


def kl_divergence(a: np.ndarray, b: np.ndarray) -> float:
    """KL(P_a || P_b) in nats between the samples' KDEs; 0 for identical samples.

    The second density is floored at DENSITY_FLOOR, so values stay finite (and large) where `a`
    has mass that `b` lacks. NaN when a sample is empty.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if not len(a) or not len(b):
        return float("nan")
    found = _densities(a, b)
    if found is None:
        return 0.0
    p, q, step = found
    support = p > 0
    return float(
        max((p[support] * np.log(p[support] / np.maximum(q[support], DENSITY_FLOOR))).sum() * step, 0.0)
    )


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.maximum(values, 0.0))) @ vectors.T


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet (2-Wasserstein) distance between Gaussians fitted to two samples of vectors.

    d = |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2), computed with symmetric
    square roots so it stays real; 0 (to rounding) for a sample against itself.

    Args:
        a: (N, D); b: (M, D); N, M >= 2.
    """
    a, b = np.atleast_2d(np.asarray(a, np.float64)), np.atleast_2d(np.asarray(b, np.float64))
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    root_a = _sqrt_psd(cov_a)
    cross = _sqrt_psd(root_a @ cov_b @ root_a)
    mean_gap = a.mean(0) - b.mean(0)
    return float(max(mean_gap @ mean_gap + np.trace(cov_a + cov_b - 2.0 * cross), 0.0))


def frechet_feature_distance(generated: np.ndarray, reference: np.ndarray) -> tuple[float, np.ndarray]:
    """Fréchet distance over symbolic feature vectors, each feature standardised by the reference set.

    Features (columns) that are NaN for any piece of either set, or constant over the reference set,
    are left out.

    Args:
        generated: (N, F); reference: (M, F) feature matrices (`features.feature_matrix`).
    Returns:
        (distance, used): the distance (NaN when fewer than two pieces or no usable feature) and the
        (F,) bool mask of the features used.
    """
    std = reference.std(axis=0) if len(reference) else np.zeros(reference.shape[1])
    finite = np.isfinite(generated).all(axis=0) & np.isfinite(reference).all(axis=0)
    used = finite & (std > 0)
    if len(generated) < 2 or len(reference) < 2 or not used.any():
        return float("nan"), used
    mean = reference[:, used].mean(axis=0)
    scale = std[used]
    return frechet_distance((generated[:, used] - mean) / scale, (reference[:, used] - mean) / scale), used
