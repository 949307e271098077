"""The bundled model's figures for docs/model-card.md, measured in one run.

1. Held-out likelihood on the bundled chorales' test split (40 pieces): bits per token, per note
   and per second. For vae / vae_gan models the bound that counts is the negative ELBO: the
   reconstruction bits at the posterior mean plus KL(q(z|x) || p(z)), both printed.
2. `--num` pieces sampled from the prior with the default settings (or the MIDI files of
   `--samples`), then compared with the real test chorales: every MusPy metric's mean, the
   overlapping area of the two distributions (goal >= 0.8), invalid (skipped) tokens, and
   memorisation against the training split (4-bar windows copied).
3. The same overlaps for real music: `--draws` seeded draws of `--size` chorales of the training
   split against the test chorales. Forty pieces are a small sample of a narrow distribution, so
   even Bach does not reach an overlap of 1; this is the bar the model's overlaps are read against.
4. With more samples than `--size` (e.g. `--num 200`): the same draws of `--size` pieces from the
   samples, so that both sides are read alike and with less noise than one set of 40 gives: per
   metric the median overlap and its 10th percentile, and the share of draws in which every MusPy
   metric reaches 0.8 (a single set of 40 samples moves between 5 and 9 metrics of 11 with the
   sampling seed).
5. Where the pitch gap comes from, two readings outside MusPy: the share of notes outside the
   piece's seven commonest pitch classes in its first `OPENING` notes, and the share of pieces
   whose first and last `OPENING` notes fit the same key best (Krumhansl-Schmuckler): Bach's
   chorales open in their key and mostly close in it.

Run: python benchmarks/bundled_model.py [--checkpoint bundled] [--num 40] [--seed 0] [--set top_p=0.9]
     python benchmarks/bundled_model.py --num 200 --draws 50      # the low-noise reading
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import numpy as np

from aurl.analyze.key import key_correlations
from aurl.config import load_settings
from aurl.data.corpus import bach_files
from aurl.data.preprocess import find_midi_files
from aurl.evaluate import EvaluateResult, evaluate_sets
from aurl.evaluate.distributions import overlap_area
from aurl.evaluate.features import SCALAR_FEATURES
from aurl.midi import read_midi
from aurl.sample import sample

# The scalar features that MusPy defines (the rest are aurl's own: density and inter-onset interval).
MUSPY_METRICS = SCALAR_FEATURES[: SCALAR_FEATURES.index("drum_pattern_consistency") + 1]
OPENING = 48  # notes: about three bars of a four-part chorale


def metric_values(report: EvaluateResult, which: str) -> dict[str, np.ndarray]:
    """Per MusPy metric, the values of the report's `which` ("generated" / "reference") files, one
    per file (NaN where a piece leaves the metric undefined)."""
    files = [f for f in report.files if f.set == which]
    return {
        m: np.array([np.nan if f.metrics.get(m) is None else f.metrics[m] for f in files], np.float64)
        for m in MUSPY_METRICS
    }


def drawn_overlaps(
    values: dict[str, np.ndarray], test: dict[str, np.ndarray], size: int, draws: int
) -> dict[str, list[float]]:
    """Per metric, the overlap with the test chorales of `size` pieces of `values`, one per seeded
    draw (the whole set once when it holds no more than `size`). Metrics undefined on either side
    (drum_pattern_consistency: chorales have no drums) are left out."""
    n = len(next(iter(values.values())))
    picks = [list(range(n))] if n <= size else [random.Random(d).sample(range(n), size) for d in range(draws)]
    out: dict[str, list[float]] = {}
    for m in MUSPY_METRICS:
        ref = test[m][np.isfinite(test[m])]
        found = [values[m][p][np.isfinite(values[m][p])] for p in picks]
        if len(ref) >= 2 and all(len(x) >= 2 for x in found):
            out[m] = [overlap_area(x, ref) for x in found]
    return out


def all_reach(overlaps: dict[str, list[float]], goal: float = 0.8) -> tuple[int, int]:
    """How many draws reach `goal` on every metric, of how many draws."""
    lowest = np.min(np.array(list(overlaps.values())), axis=0)
    return int((lowest >= goal).sum()), len(lowest)


def spread(values: list[float]) -> str:
    """Median and 10th percentile (or the one value) of a metric's overlaps over draws."""
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{np.median(values):.3f} ({np.quantile(values, 0.1):.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="bundled", help="model file, run folder or 'bundled'")
    parser.add_argument("--num", type=int, default=40, help="pieces to sample (the test split has 40)")
    parser.add_argument("--samples", type=Path, help="compare these MIDI files instead of sampling")
    parser.add_argument("--size", type=int, default=40, help="pieces per compared draw (the test split's 40)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="keep the samples in this folder")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a sample setting, e.g. top_p=0.9"
    )
    parser.add_argument(
        "--draws",
        type=int,
        default=8,
        help="seeded draws of --size pieces (real chorales; samples beyond --size)",
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
        if args.samples is not None:
            folder = args.samples
            print(f"\nsamples: the MIDI files of {folder}")
        else:
            folder = args.out or Path(scratch)
            sample_prior(args, folder)
        report = evaluate_sets([folder], reference=test, training=train)
        tonal = {"samples": tonal_readings(find_midi_files([folder]))}  # before the folder goes

    real = evaluate_sets(train, reference=test)
    test_values = metric_values(real, "reference")
    bach = drawn_overlaps(metric_values(real, "generated"), test_values, args.size, args.draws)
    drawn = drawn_overlaps(metric_values(report, "generated"), test_values, args.size, args.draws)
    n_samples = report.n_generated
    header = f"{'metric':26} {'samples':>9} {'test set':>9} {'overlap':>8}"
    print(f"\n{header}   draws of {args.size} samples: median (p10)   real chorales: median (p10)")
    for row in report.features:
        if row.generated_mean is None or row.reference_mean is None or row.overlap_area is None:
            continue  # e.g. drum_pattern_consistency: chorales have no drums
        line = f"{row.feature:26} {row.generated_mean:9.3f} {row.reference_mean:9.3f} {row.overlap_area:8.3f}"
        if row.feature in bach and row.feature in drawn:
            line += f"   {spread(drawn[row.feature]):>26}   {spread(bach[row.feature])}"
        print(line + ("" if row.feature in MUSPY_METRICS else "   (not MusPy)"))
    worst = min(
        r.overlap_area for r in report.features if r.feature in MUSPY_METRICS and r.overlap_area is not None
    )
    print(f"lowest MusPy overlap of all {n_samples} samples {worst:.3f} (goal >= 0.8)")
    for name, overlaps in ((f"samples ({n_samples})", drawn), (f"real chorales ({len(train)})", bach)):
        reached, draws = all_reach(overlaps)
        print(f"{name}: {reached} of {draws} draws of {args.size} reach >= 0.8 on every MusPy metric")
    print(f"Frechet feature distance {report.frechet_feature_distance:.3f}")
    tonal |= {"test chorales": tonal_readings(list(test)), "train chorales": tonal_readings(list(train))}
    for name, (outside, same, n) in tonal.items():
        print(
            f"{name}: {outside:.1%} of the first {OPENING} notes outside the piece's 7 commonest pitch "
            f"classes; first and last {OPENING} notes in the same key in {same:.0%} of {n} pieces"
        )
    memo = report.memorisation
    print(
        f"memorisation: mean copied share of {memo.window_bars}-bar windows {memo.mean_copied_share:.4f}, "
        f"longest copied span {memo.max_longest_span_bars} bars ({memo.known_files} known files)"
    )


def tonal_readings(files: list[Path]) -> tuple[float, float, int]:
    """Over the pieces of at least 2 * OPENING notes: the mean share of the first OPENING notes
    outside the piece's seven commonest pitch classes, the share of pieces whose first and last
    OPENING notes (by onset) fit the same key best, and how many pieces were read."""
    outside, same = [], []
    for file in files:
        score = read_midi(file)
        classes = (score.pitch % 12)[np.argsort(score.onset, kind="stable")]
        if len(classes) < 2 * OPENING:
            continue
        common = np.argsort(np.bincount(classes, minlength=12))[-7:]
        outside.append(1.0 - np.isin(classes[:OPENING], common).mean())
        ends = np.stack([np.bincount(part, minlength=12) for part in (classes[:OPENING], classes[-OPENING:])])
        best = key_correlations(ends).argmax(-1)
        same.append(best[0] == best[1])
    if not same:
        return float("nan"), float("nan"), 0
    return float(np.mean(outside)), float(np.mean(same)), len(same)


def sample_prior(args: argparse.Namespace, folder: Path) -> None:
    """Sample `args.num` pieces into `folder` and print their count, speed, validity and endings."""
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
        f"samples: {len(result.pieces)} pieces, {new:,} new tokens in {seconds:.1f} s "
        f"({result.tokens_per_second:,.0f} tokens/s), invalid tokens {skipped} "
        f"({100 * skipped / new:.2f}%), ended by {ended}"
    )


if __name__ == "__main__":
    main()
