"""What the data pipeline costs training: end-to-end tokens/s against the model's pure speed.

1. End to end: `aurl.train.train` on the bundled chorales (data pipeline, augmentation, DataLoader
   workers, host-to-device copies, schedule, clipping, AdamW, anomaly checks: everything but
   evaluation and checkpoints, which are switched off), timed between its step events.
2. Pure: the same model, optimizer and step function on the very same batches, built beforehand
   and held in memory, so only forward + backward + clipping + AdamW step remain.

The data pipeline's share is 1 - end_to_end / pure (goal: below 10%). Rounds alternate the two, so
a load change on a shared machine hits both. Run from the repository root:

    python benchmarks/train.py                                  # small preset, CPU, 3 rounds
    python benchmarks/train.py --preset tiny --workers 0 --json out.json

docs/train.md holds the figures of the last run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _settings(args: argparse.Namespace, run_dir: Path) -> Any:
    from aurl.config import load_settings
    from aurl.train import with_preset

    overrides = {
        "model.mode": args.mode, "data.batch_size": args.batch_size, "data.seq_len": args.seq_len,
        "data.workers": args.workers, "data.augment": not args.no_augment, "train.device": args.device,
        "train.precision": args.precision, "train.max_steps": args.warmup + args.steps,
        "train.log_every": 1, "train.eval_every": 10**9, "train.checkpoint_every": 10**9,
        "train.quality_samples": 0, "train.warmup_steps": 10, "train.run_dir": run_dir,
    }  # fmt: skip
    return with_preset(load_settings(overrides=overrides), args.preset)


def end_to_end(args: argparse.Namespace) -> float:
    """Training tokens per second of `train` itself over the timed steps."""
    from aurl.train import TrainEvent, train

    stamps: list[tuple[float, int]] = []

    def on_event(event: TrainEvent) -> None:
        if event.kind == "step":
            stamps.append((time.perf_counter(), int(event.data["tokens"])))

    run_dir = Path(tempfile.mkdtemp(prefix="aurl-bench-"))
    try:
        train(_settings(args, run_dir), run_dir=run_dir, on_event=on_event)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    (t0, n0), (t1, n1) = stamps[args.warmup - 1], stamps[-1]
    return (n1 - n0) / (t1 - t0)


def pure(args: argparse.Namespace) -> float:
    """Tokens per second of forward + backward + clip + AdamW on the same batches, pre-built in memory."""
    import torch

    from aurl.data import Batches, load_training_data, seq_len_at
    from aurl.train.device import autocast, resolve_device
    from aurl.train.run import build_model, build_optimizers
    from aurl.train.step import clip, predicted_tokens, to_device, weighted_backward

    settings = _settings(args, Path(tempfile.gettempdir()))
    device = resolve_device(settings.train.device)
    data = load_training_data(settings.data, seed=settings.train.seed)
    source = Batches(data.train, settings.data, seed=settings.train.seed, augment=settings.data.augment)
    per_epoch = source.num_batches(0)
    positions = [divmod(i, per_epoch) for i in range(args.warmup + args.steps)]
    batches = [
        to_device(source.batch(e, i, seq_len_at(s, settings.data)), device)
        for s, (e, i) in enumerate(positions)
    ]
    model = build_model(settings, device)
    optimizer = build_optimizers(model, settings)["generator"]
    started, tokens = 0.0, 0
    for step, batch in enumerate(batches):
        if step == args.warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            started, tokens = time.perf_counter(), 0
        optimizer.zero_grad(set_to_none=True)
        n = predicted_tokens(batch)
        sums, _ = weighted_backward(
            model, [batch], step=step, total_tokens=n, world_size=1, keep_outputs=False, adversarial=True,
            autocast=lambda: autocast(settings.train, device), scaler=None,
        )  # fmt: skip
        float(sums[0])  # the trainer reads the loss every step too
        clip(model.generator_parameters(), settings.train.clip_grad_norm)
        optimizer.step()
        tokens += n
    if device.type == "cuda":
        torch.cuda.synchronize()
    return tokens / (time.perf_counter() - started)


def batch_build_ms(args: argparse.Namespace, count: int = 50) -> float:
    """Milliseconds to build one training batch in this process (what each worker does)."""
    from aurl.data import Batches, load_training_data

    settings = _settings(args, Path(tempfile.gettempdir()))
    data = load_training_data(settings.data, seed=0)
    source = Batches(data.train, settings.data, seed=0, augment=settings.data.augment)
    started = time.perf_counter()
    for index in range(count):
        source.batch(index // source.num_batches(0), index % source.num_batches(0), settings.data.seq_len)
    return (time.perf_counter() - started) / count * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--mode", default="transformer")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--no-augment", action="store_true")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for round_ in range(args.rounds):
        measured = {"pure": pure(args), "end_to_end": end_to_end(args)}
        measured["share"] = 1.0 - measured["end_to_end"] / measured["pure"]
        rows.append(measured)
        print(
            f"round {round_ + 1}: pure {measured['pure']:,.0f} tokens/s, "
            f"end to end {measured['end_to_end']:,.0f} tokens/s, data pipeline share {measured['share']:.1%}",
            file=sys.stderr,
        )
    summary = {
        "config": vars(args) | {"json": None, "torch_threads": torch.get_num_threads()},
        "rounds": rows,
        "median_pure": statistics.median(r["pure"] for r in rows),
        "median_end_to_end": statistics.median(r["end_to_end"] for r in rows),
        "median_share": statistics.median(r["share"] for r in rows),
        "batch_build_ms": batch_build_ms(args),
    }
    print(json.dumps(summary, indent=1))
    if args.json is not None:
        args.json.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
