"""Every GPU figure the issues ask for, in one run: one call of the lent device, then give it back.

1. peak: the measured bfloat16 matrix-product rate of the card (an 8192^3 product, best of 10), the
   denominator of every "share of peak" below.
2. train (issues 3 and 4): training tokens/s of the `full` preset (transformer mode) and of the
   27.7M-parameter GPT-2 peer (8 layers, width 512), batch 32 x 1024 of random tokens, bfloat16
   autocast, AdamW, both through torch.compile; model FLOP/s as 6 x (matrix parameters) + 6 x
   layers x width x sequence per token (causal attention, forward and backward), and its share of
   the peak (goal: >= 45%).
3. sample (issue 5): tokens/s at batch 1 and 16 (512 new tokens) of aurl's FastDecoder in bfloat16
   against HF `generate` in bfloat16, same sizes and settings as benchmarks/sample.py (goal: >= 5,000
   tokens/s at batch 1), and the sampler alone (no model): the host-side ceiling of batch-1 tokens/s.
4. long (issue 5): time per token along one 10,000-token piece per attention kind
   (`benchmarks/sample.py --long`), which should stay flat for sliding and hierarchical attention.
5. graph (issue 5): the `full` bfloat16 single-token step alone, as eager kernels, as the CUDA graph
   replay `aurl sample` uses, and as a graph of torch.compile's kernels; and batch-1 tokens/s with
   each graph, within one cache capacity (250 new tokens): what bounds batch-1 speed on a GPU.

The report is written after each part, so a run cut short keeps what it measured.

The device image has torch and transformers (the peer); aurl's other dependencies travel as
wheels: fetch them with `../shared/device/wheels.sh`, carry `.whl`, and install them as that
script says (PYTHONPATH=/tmp/site:$PWD/src). Then, on the device, from the repository root:

    python benchmarks/gpu.py --only peak sample graph --json $OUT/a.json    # about 2 minutes on an H200
    python benchmarks/gpu.py --only long train --json $OUT/b.json          # about 7 minutes

All parts together outlast one device call: on an H200 (2026-11-27) a run cut at 440 s had done
peak, sample, long and the aurl half of train.

`--device cpu --quick` runs every part with tiny sizes, to check the script before a device call.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch

sys.path.insert(0, str(Path(__file__).parent))
import sample as sampling  # noqa: E402 - benchmarks/sample.py, beside this file

if TYPE_CHECKING:
    from aurl.sample import FastDecoder

GPT2_PEER = (8, 512, 8)  # layers, width, heads: the 27.7M-parameter peer of issues 3 and 5
PARTS = ("peak", "sample", "long", "train", "graph")  # the figures that matter most come first


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_tflops(device: torch.device, size: int) -> float:
    """The best bfloat16 matrix-product rate of `device` over 10 products of size^3, in TFLOP/s."""
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    best = float("inf")
    for _ in range(10):
        _sync(device)
        began = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - began)
    return 2 * size**3 / best / 1e12


def matrix_parameters(model: torch.nn.Module) -> int:
    """Weights that enter a matrix product (embedding tables do not; a tied output head does, once)."""
    total = 0
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if isinstance(module, torch.nn.Embedding) or not isinstance(weight, torch.Tensor):
            continue
        total += weight.numel() if weight.dim() == 2 else 0
    return total


def train_rate(name: str, device: torch.device, batch: int, seq: int, steps: int) -> dict:
    """Tokens/s and model FLOP/s of compiled bfloat16 training on random tokens."""
    torch.manual_seed(0)
    if name == "aurl":
        model = sampling.aurl_model("full").to(device)
        layers, width = model.config.decoder_layers, model.config.d_model
    else:
        model = sampling.gpt2_model(*GPT2_PEER, positions=seq).to(device)
        layers, width = GPT2_PEER[0], GPT2_PEER[1]
    model.train()
    compiled = torch.compile(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
    ids = torch.randint(4, 774, (batch, seq), device=device)
    ids[:, 0] = 1
    mask = torch.ones_like(ids, dtype=torch.bool)

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            if name == "aurl":
                loss = compiled({"ids": ids, "mask": mask})["loss"]
            else:
                loss = compiled(input_ids=ids, labels=ids).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    began = time.perf_counter()
    for _ in range(3):  # compiles, then settles
        step()
    _sync(device)
    compile_s = time.perf_counter() - began
    began = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    tokens_per_s = batch * seq * steps / (time.perf_counter() - began)
    flops_per_token = 6 * matrix_parameters(model) + 6 * layers * width * seq
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "tokens_per_s": tokens_per_s,
        "tflops": tokens_per_s * flops_per_token / 1e12,
        "compile_and_warmup_s": compile_s,
    }


def sample_rates(device: torch.device, tokens: int) -> dict[str, float]:
    """Tokens/s at batch 1 and 16 of aurl (FastDecoder, bfloat16) and HF `generate` (bfloat16)."""
    alone = sampling.sampling_run(sampling.NoModel(), 1, tokens)
    alone()  # warm-up
    result = alone()
    out = {"b1 sampler alone": result["tokens"] / result["seconds"]}  # the ceiling: the host's work per token
    print(f"sample b1 sampler alone {out['b1 sampler alone']:10.1f} tokens/s", flush=True)
    for batch in (1, 16):
        runs: dict[str, Callable[[], dict]] = {
            f"b{batch} aurl": sampling.aurl_run("full", batch, tokens, "fast", torch.bfloat16, str(device)),
            f"b{batch} hf": sampling.hf_run("full", batch, tokens, torch.bfloat16, str(device)),
        }
        for name, run in runs.items():
            run()  # warm-up
            result = run()
            out[name] = result["tokens"] / result["seconds"]
            print(f"sample {name:10s} {out[name]:10.1f} tokens/s", flush=True)
    return out


def step_ms(decoder: FastDecoder, device: torch.device, graph: bool, at: int = 8, steps: int = 200) -> float:
    """Milliseconds per single-token step at batch 1 after `at` tokens, without sampling: the graph
    replay through `step`, or the same static step as eager kernels (`token_step` called directly)."""
    ids = torch.full((1, 1), 10, device=device)
    _, cache = decoder.step(torch.ones(1, at, dtype=torch.long), decoder.start(1))
    state, position = cache.beat, torch.tensor([at], device=device)

    def one() -> None:
        nonlocal cache, state
        if graph:
            _, cache = decoder.step(ids, cache)
        else:
            with torch.inference_mode():
                _, state = decoder.token_step(ids, position, state, cache.keys, cache.values, None)

    for _ in range(5):  # captures (and compiles) first
        one()
    _sync(device)
    began = time.perf_counter()
    for _ in range(steps):
        one()
    _sync(device)
    return 1e3 * (time.perf_counter() - began) / steps


def graph_rates(device: torch.device, tokens: int) -> dict[str, float | str]:
    """The step alone and batch-1 sampling, eager / CUDA graph / graph of compiled kernels (bfloat16)."""
    from aurl.sample import FastDecoder

    out: dict[str, float | str] = {}
    for variant in ("graph", "compiled graph"):
        decoder = FastDecoder(sampling.aurl_model("full"), device, dtype=torch.bfloat16)
        try:
            if variant == "compiled graph":
                decoder.token_step = torch.compile(decoder.token_step)  # type: ignore[method-assign]
            else:
                out["step ms eager"] = step_ms(decoder, device, graph=False)
            out[f"step ms {variant}"] = step_ms(decoder, device, graph=True)
            if variant == "graph":  # capacity 16,384: is the step as fast 9,000 tokens in?
                out["step ms graph at 9000"] = step_ms(decoder, device, graph=True, at=9000)
            run = sampling.sampling_run(decoder, 1, tokens)
            run()  # warm-up: the capture (and compilation) of this capacity
            result = run()
            out[f"b1 tokens/s {variant}"] = result["tokens"] / result["seconds"]
        except Exception as error:  # an experiment: its failure is a finding, not the end of the report
            out[f"{variant} failed"] = f"{type(error).__name__}: {str(error)[:500]}"
        print("graph " + "  ".join(f"{k} {v}" for k, v in out.items()), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--only", nargs="+", choices=PARTS, help="parts to run (default: all, in this order)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a check of the script, no figures")
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    args = parser.parse_args()
    device = torch.device(args.device)
    parts = set(args.only or PARTS)
    size, batch, seq, steps, tokens, long_tokens, graph_tokens = (
        (256, 2, 128, 2, 16, 2200, 16) if args.quick else (8192, 32, 1024, 20, 512, 10_000, 250)
    )
    report: dict = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"}
    print(f"device: {report['device']}", flush=True)

    def save() -> None:
        if args.json:
            args.json.write_text(json.dumps(report, indent=1), encoding="utf-8")

    if "peak" in parts:
        report["peak_tflops"] = peak_tflops(device, size)
        print(f"peak bf16 {report['peak_tflops']:.1f} TFLOP/s", flush=True)
        save()
    if "sample" in parts:
        report["sample"] = sample_rates(device, tokens)
        save()
    if "long" in parts:
        times = sampling.long_step_times("full", long_tokens, str(device), torch.get_num_threads())
        report["long_ms_per_token"] = sampling.long_report(times)
        save()
    if "train" in parts:
        report["train"] = {}
        for name in ("aurl", "hf"):
            row = report["train"][name] = train_rate(name, device, batch, seq, steps)
            share = ""
            if "peak_tflops" in report:
                row["share_of_peak"] = row["tflops"] / report["peak_tflops"]
                share = f", {100 * row['share_of_peak']:.1f}% of the peak"
            print(
                f"train {name}: {row['tokens_per_s']:,.0f} tokens/s, {row['tflops']:.1f} TFLOP/s{share}",
                flush=True,
            )
            save()
    if "graph" in parts:
        report["graph"] = graph_rates(device, graph_tokens)
        save()


if __name__ == "__main__":
    main()
