"""Sampling speed of aurl next to Hugging Face `generate`, at batch 1 and 16, on the CPU.

Two pairs of models of the same size, with random weights (speed does not depend on them):
- aurl's `small` preset (transformer mode, 3.4M parameters) and GPT-2 with 4 layers, width 256,
  4 heads, vocabulary 774 and 4096 positions (4.4M, the peer measured in issue 5);
- aurl's `full` preset (19.4M) and the 27.7M-parameter peer: GPT-2 with 8 layers, width 512, 8 heads.

Both draw `--tokens` new tokens per row with the same sampling settings (temperature 1, top-k 50,
top-p 0.95) and a KV cache; neither may stop early (HF: min_new_tokens; aurl: EOS masked, the
grammar mask on as always). aurl runs through `aurl.sample.generate` with its default decoder
(FastDecoder) in float32 and in half precision (float16 at batch 1, bfloat16 at batch 16, the faster
of the two on a CPU at each size), and at batch 1 also in half precision with `--compile` (the
compilation falls in the warm-up run, unmeasured), through `TorchDecoder` (the model's own
`step`) and through the model exported to ONNX (float32 and int8, `aurl export`), run by
onnxruntime with the same number of threads; HF runs in float32 and in the same half precision.
For aurl the share of time spent outside the model (grammar mask, constraints, processors,
drawing) is reported too, and so is the sampler alone at batch 1 (a stand-in model that returns
fixed logits at once): the most tokens/s any model can reach through `aurl.sample.generate`.

Every configuration runs `--repeats` times, interleaved, and keeps its best time: the CPU may be
shared. transformers lives outside the project's environment; from the repository root:

    /work/venvs/bench/bin/python benchmarks/sample.py                 # about 15 minutes
    /work/venvs/bench/bin/python benchmarks/sample.py --tokens 128 --repeats 1 --json out.json
    /work/venvs/bench/bin/python benchmarks/sample.py --only "b1 " --repeats 3   # batch 1 alone

`--long 10000` measures something else: the time per token (model and sampling) along one piece of
10,000 tokens at batch 1, for aurl with full, sliding and hierarchical attention, each also
exported to int8 ONNX (on a CPU), and for the GPT-2 peer, as medians over
tokens 100-1100, the middle 1000 and the last 1000. Windowed attention keeps a bounded cache, so
its time should stay flat; full attention's grows with the piece.

docs/sample.md holds the figures of the last run.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from itertools import pairwise
from typing import Any

import torch

SETTINGS = {"temperature": 1.0, "top_k": 50, "top_p": 0.95}
PAIRS = {"small": (4, 256, 4), "full": (8, 512, 8)}  # aurl preset -> GPT-2 layers, width, heads
HALF = {1: torch.float16, 16: torch.bfloat16}


def aurl_model(preset: str, attention: str = "full"):  # noqa: ANN202 - torch is imported by the caller
    from aurl.models import MusicTransformerVAEGAN, TokenTable
    from aurl.tokens import model_tables

    torch.manual_seed(0)
    table = TokenTable(**model_tables())
    return MusicTransformerVAEGAN.from_preset(preset, mode="transformer", table=table, attention=attention)


def gpt2_model(layers: int, width: int, heads: int, positions: int = 4096):  # noqa: ANN202
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=774, n_positions=positions, n_embd=width, n_layer=layers, n_head=heads,
        bos_token_id=1, eos_token_id=2, pad_token_id=0,
    )  # fmt: skip
    return GPT2LMHeadModel(config).eval()


class _NoEos:
    """A logits processor that masks EOS, so that every row runs its full length."""

    def __call__(self, logits: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        from aurl.tokens import vocab

        return logits.index_fill(-1, torch.tensor([vocab.EOS]), float("-inf"))


class NoModel:
    """A Decoder that returns the same random logits at once: what is left is the sampler's own cost
    (grammar mask, processors, draw, bookkeeping), the ceiling of tokens/s for any model."""

    vocab_size = 774

    def __init__(self) -> None:
        self.logits = torch.randn(1, 1, self.vocab_size, generator=torch.Generator().manual_seed(0)) * 3

    def start(self, batch: int, z: Any = None) -> None:
        return None

    def step(self, ids: torch.Tensor, cache: None) -> tuple[torch.Tensor, None]:
        return self.logits.expand(ids.shape[0], ids.shape[1], self.vocab_size), cache

    def reorder(self, cache: None, index: torch.Tensor) -> None:
        return cache


class _Timed:
    """A Decoder wrapper that counts generated tokens and times every call of the model."""

    def __init__(self, decoder: Any) -> None:
        self.inner, self.vocab_size = decoder, decoder.vocab_size
        self.tokens, self.step_s, self.began = 0, [], []  # per call: seconds inside, start time

    @property
    def model_s(self) -> float:
        return sum(self.step_s)

    def start(self, batch: int, z: Any = None) -> Any:
        return self.inner.start(batch, z)

    def step(self, ids: torch.Tensor, cache: Any) -> Any:
        began = time.perf_counter()
        out = self.inner.step(ids, cache)
        self.step_s.append(time.perf_counter() - began)
        self.began.append(began)
        self.tokens += ids.shape[0] if ids.shape[1] == 1 else 0
        return out

    def reorder(self, cache: Any, index: torch.Tensor) -> Any:
        return self.inner.reorder(cache, index)


def aurl_run(
    preset: str, batch: int, tokens: int, decoder_kind: str, dtype: torch.dtype, device: str = "cpu",
    compile: bool = False,
) -> Callable[[], dict]:  # fmt: skip
    from aurl.sample import FastDecoder, TorchDecoder

    model = aurl_model(preset)
    fast = decoder_kind == "fast"
    decoder = (
        FastDecoder(model, device, dtype=dtype, compile=compile) if fast else TorchDecoder(model, device)
    )
    return sampling_run(decoder, batch, tokens)


def onnx_decoder(preset: str, fmt: str, threads: int, attention: str = "full") -> Any:
    """The model exported by `aurl export --format fmt` (onnx or int8) to ONNX, as a Decoder run by
    onnxruntime with as many threads as torch: the fastest CPU path aurl offers at batch 1."""
    import tempfile
    from pathlib import Path

    from aurl.export import OnnxDecoder, export_model
    from aurl.models import save_weights
    from aurl.tokens.vocab import VOCAB_VERSION

    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "model.safetensors"
        save_weights(aurl_model(preset, attention), source, {"vocab_version": VOCAB_VERSION})
        exported = Path(export_model(source, fmt, Path(folder) / "model.onnx").out)
        return OnnxDecoder(exported, threads=threads)  # the session holds the graph in memory


def onnx_run(preset: str, tokens: int, fmt: str, threads: int) -> Callable[[], dict]:
    return sampling_run(onnx_decoder(preset, fmt, threads), 1, tokens)


def sampling_run(decoder: Any, batch: int, tokens: int) -> Callable[[], dict]:
    from aurl.sample import TopK, TopP, generate

    processors = [_NoEos(), TopK(SETTINGS["top_k"]), TopP(SETTINGS["top_p"])]

    def run() -> dict:
        timed = _Timed(decoder)
        began = time.perf_counter()
        generate(timed, num=batch, max_tokens=tokens, processors=processors, seed=0)
        seconds = time.perf_counter() - began
        generated = timed.tokens + batch  # the last step's tokens are drawn without another model call
        return {"tokens": generated, "seconds": seconds, "outside_model": 1 - timed.model_s / seconds}

    return run


def hf_run(
    preset: str, batch: int, tokens: int, dtype: torch.dtype, device: str = "cpu"
) -> Callable[[], dict]:
    model = gpt2_model(*PAIRS[preset]).to(device, dtype)
    ids = torch.ones(batch, 1, dtype=torch.long, device=device)

    def run() -> dict:
        began = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(
                ids, attention_mask=torch.ones_like(ids), max_new_tokens=tokens, min_new_tokens=tokens,
                do_sample=True, use_cache=True, **SETTINGS,
            )  # fmt: skip
        return {"tokens": batch * (out.shape[1] - 1), "seconds": time.perf_counter() - began}

    return run


def parameters(preset: str) -> tuple[int, int]:
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    return count(aurl_model(preset)), count(gpt2_model(*PAIRS[preset]))


def configurations(tokens: int, threads: int) -> dict[str, Callable[[], Callable[[], dict]]]:
    """name -> a builder of one measurement (built lazily, so only one model is in memory at a time)."""
    out: dict[str, Callable[[], Callable[[], dict]]] = {}
    out["b1 aurl sampler alone"] = lambda: sampling_run(NoModel(), 1, tokens)
    for preset in PAIRS:
        for batch in (1, 16):
            half = HALF[batch]
            label = str(half).removeprefix("torch.")
            out[f"{preset} b{batch} aurl float32"] = lambda p=preset, b=batch: aurl_run(
                p, b, tokens, "fast", torch.float32
            )
            out[f"{preset} b{batch} aurl {label}"] = lambda p=preset, b=batch, h=half: aurl_run(
                p, b, tokens, "fast", h
            )
            if batch == 1:
                out[f"{preset} b1 aurl {label} compiled"] = lambda p=preset, h=half: aurl_run(
                    p, 1, tokens, "fast", h, compile=True
                )
                out[f"{preset} b{batch} aurl model.step"] = lambda p=preset, b=batch: aurl_run(
                    p, b, tokens, "torch", torch.float32
                )
                for fmt, name in (("onnx", "onnx float32"), ("int8", "onnx int8")):
                    out[f"{preset} b1 aurl {name}"] = lambda p=preset, f=fmt: onnx_run(p, tokens, f, threads)
            out[f"{preset} b{batch} hf float32"] = lambda p=preset, b=batch: hf_run(
                p, b, tokens, torch.float32
            )
            out[f"{preset} b{batch} hf {label}"] = lambda p=preset, b=batch, h=half: hf_run(p, b, tokens, h)
    return out


def picked(name: str, only: list[str] | None) -> bool:
    """Is `name` measured under `--only` (all are without it)?"""
    return not only or any(part in name for part in only)


def measure(tokens: int, repeats: int, threads: int, only: list[str] | None = None) -> dict[str, dict]:
    builders = {name: build for name, build in configurations(tokens, threads).items() if picked(name, only)}
    best: dict[str, dict] = {}
    for repeat in range(repeats):
        for name, build in builders.items():
            try:
                run = build()
                run()  # warm-up: first calls allocate and pick kernels
                result = run()
            except Exception as error:  # a half-precision path a library does not support on this CPU
                best[name] = {"error": f"{type(error).__name__}: {str(error)[:120]}"}
                continue
            result["tokens_per_s"] = result["tokens"] / result["seconds"]
            if name not in best or result["tokens_per_s"] > best[name].get("tokens_per_s", 0):
                best[name] = result
            print(f"[{repeat + 1}/{repeats}] {name:28s} {result['tokens_per_s']:9.1f} tokens/s", flush=True)
    return best


def report(best: dict[str, dict], args: argparse.Namespace) -> dict:
    ratios = {}
    for preset in PAIRS:
        for batch in (1, 16):
            label = str(HALF[batch]).removeprefix("torch.")
            hf32 = best.get(f"{preset} b{batch} hf float32", {}).get("tokens_per_s")
            hfh = best.get(f"{preset} b{batch} hf {label}", {}).get("tokens_per_s")
            for variant in ("float32", label, f"{label} compiled", "model.step", "onnx float32", "onnx int8"):
                ours = best.get(f"{preset} b{batch} aurl {variant}", {}).get("tokens_per_s")
                if ours and hf32:
                    ratios[f"{preset} b{batch} aurl {variant} / hf float32"] = ours / hf32
                if ours and hfh and variant == label:
                    ratios[f"{preset} b{batch} aurl {variant} / hf {label}"] = ours / hfh
    return {
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                    "torch": torch.__version__},
        "settings": {**SETTINGS, "new_tokens": args.tokens, "repeats": args.repeats},
        "parameters": {p: dict(zip(("aurl", "gpt2"), parameters(p), strict=True)) for p in PAIRS},
        "results": best,
        "ratios": ratios,
    }  # fmt: skip


LONG_ATTENTION = ("full", "sliding", "hierarchical")


def long_step_times(
    preset: str, tokens: int, device: str, threads: int, only: list[str] | None = None
) -> dict[str, list[float]]:
    """Seconds per token (model and sampling) along one piece of `tokens` new tokens at batch 1.

    aurl runs each attention kind through the decoder `aurl sample` picks for it (FastDecoder for
    full attention, the model's own `step` for the windowed kinds), and on a CPU also each model
    exported to int8 ONNX; the peer is HF's GPT-2 of the same
    size with enough positions, timed between the calls of a logits processor.
    """
    from aurl.config import SampleConfig
    from aurl.sample import FastDecoder, TopK, TopP, TorchDecoder, generate
    from aurl.sample.constraints import build_constraints

    out: dict[str, list[float]] = {}
    processors = [_NoEos(), TopK(SETTINGS["top_k"]), TopP(SETTINGS["top_p"])]
    # Random weights leave notes sounding by the hundred, and the stopping rule starts closing a
    # piece early enough to end them all; a polyphony limit lets the piece run its whole length.
    constraints = build_constraints(SampleConfig(max_polyphony=8))
    decoders: dict[str, Callable[[], Any]] = {
        f"aurl {kind}": lambda kind=kind: (FastDecoder if kind == "full" else TorchDecoder)(
            aurl_model(preset, kind), device
        )
        for kind in LONG_ATTENTION
    }  # fmt: skip
    if device == "cpu":
        for kind in LONG_ATTENTION:
            decoders[f"aurl onnx int8 {kind}"] = lambda kind=kind: onnx_decoder(preset, "int8", threads, kind)
    for name, build in decoders.items():
        if not picked(name, only):
            continue
        timed = _Timed(build())
        generate(timed, num=1, max_tokens=tokens, processors=processors, constraints=constraints, seed=0)
        out[name] = [b - a for a, b in pairwise(timed.began)]
        print(f"{name}: {len(out[name])} steps", flush=True)
    if picked("hf full", only):
        out["hf full"] = _hf_step_times(preset, tokens, device)
    return out


def _hf_step_times(preset: str, tokens: int, device: str) -> list[float]:
    from transformers import LogitsProcessorList

    model = gpt2_model(*PAIRS[preset], positions=tokens + 1).to(device)
    stamps: list[float] = []

    def clock(input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if scores.is_cuda:
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())
        return scores

    ids = torch.ones(1, 1, dtype=torch.long, device=device)
    with torch.inference_mode():
        model.generate(
            ids, attention_mask=torch.ones_like(ids), max_new_tokens=tokens, min_new_tokens=tokens,
            do_sample=True, use_cache=True, logits_processor=LogitsProcessorList([clock]), **SETTINGS,
        )  # fmt: skip
    return [b - a for a, b in pairwise(stamps)]


def long_report(times: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """Median milliseconds per token near the start, the middle and the end, and end / start."""
    rows = {}
    for name, seconds in times.items():
        n, half = len(seconds), len(seconds) // 2
        windows = {"start": (100, 1100), "middle": (half - 500, half + 500), "end": (n - 1000, n)}
        ms = {where: 1e3 * statistics.median(seconds[a:b]) for where, (a, b) in windows.items()}
        rows[name] = {"tokens": n + 1, **ms, "end / start": ms["end"] / ms["start"]}
        print(f"{name:20s} " + "  ".join(f"{k} {v:7.2f}" for k, v in rows[name].items()), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=512, help="new tokens per row")
    parser.add_argument("--repeats", type=int, default=2, help="runs per configuration (the best counts)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--json", help="write the report to this file")
    parser.add_argument(
        "--only", nargs="+", metavar="TEXT",
        help="measure only the configurations (with --long: models) whose names hold one of these texts",
    )  # fmt: skip
    parser.add_argument(
        "--long", type=int, metavar="TOKENS",
        help="instead: time per token along one piece this long, per attention kind (e.g. 10000)",
    )  # fmt: skip
    parser.add_argument("--preset", default="small", choices=sorted(PAIRS), help="with --long: model size")
    parser.add_argument("--device", default="cpu", help="with --long: where the models run (cpu, cuda)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.long:
        if args.long < 2200:
            parser.error("--long needs at least 2200 tokens (three windows of 1000 after a warm-up of 100)")
        rows = long_report(long_step_times(args.preset, args.long, args.device, args.threads, args.only))
        data = {"settings": {**SETTINGS, "tokens": args.long, "preset": args.preset, "device": args.device,
                             "threads": args.threads}, "ms_per_token": rows}  # fmt: skip
    else:
        data = report(measure(args.tokens, args.repeats, args.threads, args.only), args)
        print(json.dumps({"parameters": data["parameters"], "ratios": data["ratios"]}, indent=1))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1)


if __name__ == "__main__":
    main()
