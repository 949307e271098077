"""The bundled model's figures for docs/model-card.md, measured in one run.

1. Held-out likelihood on the bundled chorales' test split (40 pieces): bits per token, per note
   and per second. For vae / vae_gan models the bound that counts is the negative ELBO: the
   reconstruction bits at the posterior mean plus KL(q(z|x) || p(z)), both printed.
2. `--num` pieces sampled from the prior with the default settings, then compared with the real test
   chorales: every MusPy metric's mean, the overlapping area of the two distributions (goal >= 0.8),
   invalid (skipped) tokens, and memorisation against the training split (4-bar windows copied).
3. The same overlaps for real music: `--num` chorales of the training split (`--draws` seeded
   draws) against the test chorales. Forty pieces are a small sample of a narrow distribution, so
   even Bach does not reach an overlap of 1; this is the bar the model's overlaps are read against.

Run: python benchmarks/bundled_model.py [--checkpoint bundled] [--num 40] [--seed 0] [--set top_p=0.9]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from aurl.config import load_settings
from aurl.data.corpus import bach_files
from aurl.evaluate import evaluate_sets
from aurl.evaluate.features import SCALAR_FEATURES
from aurl.sample import sample

# The scalar features that MusPy defines (the rest are aurl's own: density and inter-onset interval).
MUSPY_METRICS = SCALAR_FEATURES[: SCALAR_FEATURES.index("drum_pattern_consistency") + 1]


def real_overlaps(train: list[Path], test: list[Path], num: int, draws: int) -> dict[str, list[float]]:
    """Per feature, the overlap of `num` training chorales with the test chorales, one per seeded draw."""
    out: dict[str, list[float]] = defaultdict(list)
    for draw in range(draws):
        chosen = random.Random(draw).sample(train, num)
        for row in evaluate_sets(chosen, reference=test).features:
            if row.overlap_area is not None:
                out[row.feature].append(row.overlap_area)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="bundled", help="model file, run folder or 'bundled'")
    parser.add_argument("--num", type=int, default=40, help="pieces to sample (the test split has 40)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="keep the samples in this folder")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a sample setting, e.g. top_p=0.9"
    )
    parser.add_argument(
        "--draws", type=int, default=8, help="draws of real chorales for the reference overlaps"
    )
    args = parser.parse_args()

    test, train = bach_files("test"), bach_files("train")
    started = time.perf_counter()
    scored = evaluate_sets(test, reference=test, checkpoint=args.checkpoint)
    like = scored.likelihood
    assert like is not None
    kl = like.kl_bits_per_token or 0.0
    bits = like.bits + kl * like.n_tokens
    print(
        f"likelihood on the test split ({like.n_pieces} pieces, {like.n_tokens:,} tokens, "
        f"{like.n_notes:,} notes, {like.seconds:,.0f} s; mode {like.mode}, latent {like.latent}), "
        f"{time.perf_counter() - started:.1f} s"
    )
    print(f"  reconstruction  {like.bits_per_token:.3f} bits/token  KL {kl:.3f} bits/token")
    print(
        f"  bound           {bits / like.n_tokens:.3f} bits/token  {bits / like.n_notes:.2f} bits/note  "
        f"{bits / like.seconds:.1f} bits/s"
    )

    with tempfile.TemporaryDirectory() as scratch:
        folder = args.out or Path(scratch)
        started = time.perf_counter()
        chosen = dict(item.split("=", 1) for item in args.set)
        settings = load_settings(
            overrides={"sample.seed": args.seed, **{f"sample.{k}": v for k, v in chosen.items()}}
        )
        print(f"\nsampling with the defaults{''.join(f', {k}={v}' for k, v in chosen.items())}")
        result = sample(settings, checkpoint=args.checkpoint, out=folder, num=args.num)
        new = sum(p.new_tokens for p in result.pieces)
        skipped = sum(p.skipped_tokens for p in result.pieces)
        ended = {e: sum(p.ended_by == e for p in result.pieces) for e in ("eos", "stop", "budget")}
        seconds = time.perf_counter() - started
        print(
            f"\nsamples: {len(result.pieces)} pieces, {new:,} new tokens in {seconds:.1f} s "
            f"({result.tokens_per_second:,.0f} tokens/s), invalid tokens {skipped} "
            f"({100 * skipped / new:.2f}%), ended by {ended}"
        )
        report = evaluate_sets([folder], reference=test, training=train)

    real = real_overlaps(list(train), list(test), args.num, args.draws)
    header = f"{'metric':26} {'samples':>9} {'test set':>9} {'overlap':>8}"
    print(f"\n{header}   real chorales' overlap: median (range)")
    for row in report.features:
        if row.generated_mean is None or row.reference_mean is None or row.overlap_area is None:
            continue  # e.g. drum_pattern_consistency: chorales have no drums
        muspy = "" if row.feature in MUSPY_METRICS else "  (not MusPy)"
        bach = real[row.feature]
        print(
            f"{row.feature:26} {row.generated_mean:9.3f} {row.reference_mean:9.3f} {row.overlap_area:8.3f}   "
            f"{statistics.median(bach):.3f} ({min(bach):.3f}-{max(bach):.3f}){muspy}"
        )
    worst = min(
        r.overlap_area for r in report.features if r.feature in MUSPY_METRICS and r.overlap_area is not None
    )
    lowest_real = [min(real[m][d] for m in MUSPY_METRICS if real[m]) for d in range(args.draws)]
    print(
        f"real chorales: {sum(low >= 0.8 for low in lowest_real)} of {args.draws} draws of {args.num} reach "
        f">= 0.8 on every MusPy metric (their lowest overlap: {min(lowest_real):.3f}-{max(lowest_real):.3f})"
    )
    memo = report.memorisation
    print(
        f"lowest MusPy overlap {worst:.3f} (goal >= 0.8); Frechet feature distance "
        f"{report.frechet_feature_distance:.3f}"
    )
    print(
        f"memorisation: mean copied share of {memo.window_bars}-bar windows {memo.mean_copied_share:.4f}, "
        f"longest copied span {memo.max_longest_span_bars} bars ({memo.known_files} known files)"
    )


if __name__ == "__main__":
    main()
