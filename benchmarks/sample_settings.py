"""Which sampling settings suit a model: its samples under each setting against the TRAIN split.

The bundled model's recommended settings (the `[sample]` section of src/aurl/configs/bach-small.toml)
were chosen with this script; the test split is left for docs/model-card.md. Each setting samples
`--num` pieces from the prior (seed 1) and compares them with `--reference` chorales of the train
split (a seeded draw): the MusPy overlaps, their mean and minimum, and how many pieces ended with EOS.

Run: python benchmarks/sample_settings.py [--checkpoint bundled] ["temperature=0.6" "top_p=1;top_k=8" ...]
(an empty string is the model's own recommended settings; with none given, the model card's six).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path

from aurl.config import load_settings
from aurl.data.corpus import bach_files
from aurl.evaluate import evaluate_sets
from aurl.sample import sample

sys.path.insert(0, str(Path(__file__).parent))
from bundled_model import MUSPY_METRICS  # noqa: E402 - benchmarks/bundled_model.py, beside this file

# What docs/model-card.md compares for the bundled model (top_p = 0.9 is its recommendation).
DEFAULT_SETTINGS = [f"temperature={t}" for t in (0.5, 0.6, 0.7, 0.8, 0.9)] + ["temperature=1.0;top_p=1.0"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "settings", nargs="*", default=DEFAULT_SETTINGS, help="'key=value;key=value' settings, one run each"
    )
    parser.add_argument("--checkpoint", default="bundled", help="model file, run folder or 'bundled'")
    parser.add_argument("--num", type=int, default=40, help="pieces per setting")
    parser.add_argument("--reference", type=int, default=80, help="train chorales to compare with")
    args = parser.parse_args()

    reference = random.Random(0).sample(list(bach_files("train")), args.reference)
    for spec in args.settings:
        chosen = dict(item.split("=", 1) for item in spec.split(";") if item)
        overrides = {"sample.seed": 1, **{f"sample.{k}": v for k, v in chosen.items()}}
        settings = load_settings(overrides=overrides)
        with tempfile.TemporaryDirectory() as folder:
            result = sample(settings, checkpoint=args.checkpoint, out=Path(folder), num=args.num)
            report = evaluate_sets([Path(folder)], reference=reference)
        rows = [r for r in report.features if r.feature in MUSPY_METRICS and r.overlap_area is not None]
        overlaps = [r.overlap_area for r in rows if r.overlap_area is not None]
        ended = sum(p.ended_by == "eos" for p in result.pieces)
        print(
            f"{spec or 'recommended'}: mean MusPy overlap {sum(overlaps) / len(overlaps):.3f}, "
            f"lowest {min(overlaps):.3f}, {ended}/{len(result.pieces)} ended with EOS"
        )
        for r in rows:
            print(f"  {r.feature:22} {r.generated_mean:8.3f} {r.reference_mean:8.3f} {r.overlap_area:6.2f}")


if __name__ == "__main__":
    main()
