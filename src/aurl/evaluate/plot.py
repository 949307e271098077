"""`aurl evaluate --plot DIR`: one histogram per feature, generated against reference.

matplotlib is an optional dependency (`pip install 'aurl[plot]'`), imported only when plotting.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from aurl.analyze.plot import pyplot
from aurl.evaluate.features import SCALAR_FEATURES
from aurl.evaluate.result import EvaluateResult


def plot_feature_histograms(result: EvaluateResult, out_dir: str | os.PathLike[str]) -> list[Path]:
    """Write `<feature>.png` into `out_dir` (created if needed) for every feature with values.

    Each image overlays the generated and reference sets' value histograms (as densities, on shared
    bins) and names the overlapping area and KL divergence in its title.

    Returns:
        The files written, in SCALAR_FEATURES order.
    Raises:
        AurlError: matplotlib is not installed.
    """
    plt = pyplot()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    comparisons = {c.feature: c for c in result.features}
    written = []
    for name in SCALAR_FEATURES:
        values = {
            which: np.array(
                [f.metrics[name] for f in result.files if f.set == which and f.metrics[name] is not None]
            )
            for which in ("generated", "reference")
        }
        pooled = np.concatenate(list(values.values()))
        if not len(pooled):
            continue
        bins = np.histogram_bin_edges(pooled, bins=30)
        figure, ax = plt.subplots(figsize=(6, 4))
        for which, color in (("reference", "tab:grey"), ("generated", "tab:orange")):
            if len(values[which]):
                ax.hist(values[which], bins=bins, density=True, alpha=0.6, color=color, label=which)
        c = comparisons.get(name)
        oa = f"{c.overlap_area:.3f}" if c is not None and c.overlap_area is not None else "n/a"
        kld = f"{c.kl_divergence:.3f}" if c is not None and c.kl_divergence is not None else "n/a"
        ax.set_title(f"{name}  (OA {oa}, KLD {kld})")
        ax.set_xlabel(name)
        ax.set_ylabel("density")
        ax.legend()
        figure.tight_layout()
        path = out / f"{name}.png"
        figure.savefig(path, dpi=100)
        plt.close(figure)
        written.append(path)
    return written
