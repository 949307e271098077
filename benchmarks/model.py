"""Training speed and memory of the model on the CPU, next to Hugging Face's GPT-2 of the same size.

1. Throughput: forward + backward + AdamW step of the `full` preset in transformer mode at
   sequence 1024, in tokens per second, and the peak resident memory of the process; the same for
   `transformers.GPT2LMHeadModel` with the same depth, width, heads, vocabulary and dropout (only
   when transformers is importable).
2. Long sequences: peak resident memory of one training step (batch 1) at 4k, 8k and 16k tokens
   for full, hierarchical and sliding attention.

Every measurement runs in a fresh subprocess so that its peak RSS is its own. Torch uses 2 threads.
transformers lives outside the project's environment; run from the repository root with an
interpreter that has it, e.g.

    /work/venvs/bench/bin/python benchmarks/model.py            # everything (about 10 minutes)
    python benchmarks/model.py --skip-long --json out.json      # throughput only

docs/model.md holds the figures of the last run.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

THREADS = 2
VOCAB = 774


def _rss_mb() -> float:
    """Current resident set size of this process in MB."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KB


def _aurl_model(attention: str):  # noqa: ANN202 - torch imported lazily
    from aurl.models import MusicTransformerVAEGAN, TokenTable
    from aurl.tokens import vocab

    table = TokenTable(
        time_advance=vocab.time_advance_table(),
        bar_start=vocab.bar_start_table(),
        bar_steps=vocab.bar_steps_table(),
    )
    return MusicTransformerVAEGAN.from_preset("full", mode="transformer", table=table, attention=attention)


def _gpt2(attn_pdrop: float):  # noqa: ANN202
    """GPT-2 with the depth, width, heads and vocabulary of the `full` preset; dropouts as GPT-2's default."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=VOCAB, n_positions=1024, n_embd=512, n_layer=6, n_head=8, resid_pdrop=0.1,
        embd_pdrop=0.1, attn_pdrop=attn_pdrop, bos_token_id=1, eos_token_id=2,
    )  # fmt: skip
    return GPT2LMHeadModel(config)


def measure(spec: dict) -> dict:
    """Run one measurement in this process; returns tokens/s and memory in MB."""
    import torch

    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    model = _gpt2(spec["attn_pdrop"]) if spec["model"] == "gpt2" else _aurl_model(spec["attention"])
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batch, seq = spec["batch"], spec["seq"]
    ids = torch.randint(4, VOCAB, (batch, seq))
    ids[:, 0] = 1
    mask = torch.ones_like(ids, dtype=torch.bool)

    def step() -> None:
        if spec["model"] == "gpt2":
            loss = model(input_ids=ids, labels=ids).loss
        else:
            loss = model({"ids": ids, "mask": mask})["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    before = _rss_mb()
    for _ in range(spec["warmup"]):
        step()
    start = time.perf_counter()
    for _ in range(spec["steps"]):
        step()
    seconds = time.perf_counter() - start
    return {
        **spec,
        "parameters": sum(p.numel() for p in model.parameters()),
        "tokens_per_s": batch * seq * spec["steps"] / seconds if spec["steps"] else None,
        "seconds_per_step": seconds / spec["steps"] if spec["steps"] else None,
        "rss_before_mb": before,
        "peak_rss_mb": _peak_mb(),
    }


def _in_subprocess(spec: dict) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--measure", json.dumps(spec)], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        return {**spec, "error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=4, help="sequences per step in the throughput test")
    parser.add_argument("--steps", type=int, default=4, help="timed steps per throughput measurement")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of the throughput comparison")
    parser.add_argument("--skip-long", action="store_true", help="skip the 4k/8k/16k memory measurements")
    parser.add_argument("--json", type=Path, help="also write every result to this file")
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(json.loads(args.measure))))
        return
    results = []
    peers = [("aurl", 0.0)]
    if importlib.util.find_spec("transformers"):
        peers += [("gpt2", 0.1), ("gpt2", 0.0)]  # GPT-2's default attention dropout, and none
    else:
        print("transformers is not importable here: GPT-2 is skipped (see the module docstring)")
    for _ in range(args.repeat):  # alternate the models so that a busy machine slows each alike
        for name, attn_pdrop in peers:
            spec = {
                "model": name,
                "attention": "full",
                "attn_pdrop": attn_pdrop,
                "batch": args.batch,
                "seq": 1024,
            }
            results.append(_in_subprocess({**spec, "warmup": 1, "steps": args.steps}))
            _print(results[-1])
    if not args.skip_long:
        for seq in (4096, 8192, 16384):
            for attention in ("full", "hierarchical", "sliding"):
                spec = {"model": "aurl", "attention": attention, "attn_pdrop": 0.0, "batch": 1, "seq": seq}
                spec.update(warmup=1, steps=0)
                results.append(_in_subprocess(spec))
                _print(results[-1])
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def _print(r: dict) -> None:
    name = r["model"] + (f" (attn_pdrop {r['attn_pdrop']})" if r["model"] == "gpt2" else "")
    what = f"{name:23} {r['attention']:12} batch {r['batch']} x {r['seq']:5}"
    if "error" in r:
        print(f"{what}  error: {r['error']}")
        return
    speed = f"{r['tokens_per_s']:8.0f} tokens/s" if r["tokens_per_s"] else " " * 17
    print(
        f"{what}  {r['parameters'] / 1e6:5.2f}M params  {speed}  peak RSS {r['peak_rss_mb']:7.0f} MB"
        f"  (model + optimizer built: {r['rss_before_mb']:5.0f} MB)",
        flush=True,
    )


if __name__ == "__main__":
    main()
