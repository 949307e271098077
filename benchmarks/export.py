"""Size, load time, decoding speed and test-chorale loss of every export format, in one run.

    python benchmarks/export.py --checkpoint bundled --threads 2 --tokens 512 --pieces 40

Writes the checkpoint as float32 safetensors (the baseline: a bundled model is stored in fp16) and
exports it to every format, then for each
file: its size, the time `aurl.export.load_decoder` takes to give a Decoder, tokens per second of
greedy decoding one token at a time (batch 1, KV cache, best of --repeat rounds over all formats) and the mean
next-token cross-entropy on the first --pieces test chorales, each cut to its first --context
tokens (the length the model was trained on; an ONNX step materialises the whole T x T attention,
so a 16k-token chorale would need gigabytes), in one step call through
the same Decoder; vae modes decode with the piece's posterior mean from the float32 model). For the
PyTorch formats it also gives aurl.evaluate's bits per token on the same pieces, a cross-check of
that loss (bits = nats / ln 2 when every piece fits its 2048-token context).
Prints a markdown table; --json writes the figures to a file too.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from aurl.data.corpus import bach_files
from aurl.evaluate.likelihood import score_likelihood
from aurl.export import OnnxDecoder, export_model, load_decoder
from aurl.midi import read_midi
from aurl.models import load_weights, read_metadata, save_weights
from aurl.models.bundled import resolve_checkpoint
from aurl.sample.decoder import Decoder, TorchDecoder
from aurl.tokens import encode

FORMATS = [  # (label, --format, file name); float32 is written by save_weights
    ("float32 (PyTorch)", None, "model.safetensors"),
    ("fp16 (PyTorch, upcast)", "fp16", "model.fp16.safetensors"),
    ("bf16 (PyTorch, upcast)", "bf16", "model.bf16.safetensors"),
    ("int8 (PyTorch dynamic)", "int8", "model.int8.safetensors"),
    ("onnx float32 (onnxruntime)", "onnx", "model.onnx"),
    ("onnx int8 (onnxruntime)", "int8", "model.int8.onnx"),
]


def tokens_per_second(decoder: Decoder, tokens: int) -> float:
    """Greedy decoding speed, batch 1, one token per step after BOS."""
    with torch.inference_mode():
        logits, cache = decoder.step(torch.tensor([[1]]), decoder.start(1))
        start = time.perf_counter()
        for _ in range(tokens):
            logits, cache = decoder.step(logits[:, -1:].argmax(-1), cache)
        return tokens / (time.perf_counter() - start)


def mean_loss(decoder: Decoder, pieces: list[torch.Tensor], latents: list) -> float:
    """Token-weighted mean next-token cross-entropy (nats) over the pieces."""
    total, count = 0.0, 0
    with torch.inference_mode():
        for ids, z in zip(pieces, latents, strict=True):
            logits, _ = decoder.step(ids[None], decoder.start(1, z))
            total += float(F.cross_entropy(logits[0, :-1].float(), ids[1:], reduction="sum"))
            count += len(ids) - 1
    return total / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="bundled", help="model file, run directory or 'bundled'")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=512, help="tokens decoded for the speed figure")
    parser.add_argument("--repeat", type=int, default=3, help="speed rounds over all formats")
    parser.add_argument("--pieces", type=int, default=40, help="test chorales for the loss (40 = all)")
    parser.add_argument("--context", type=int, default=2048, help="tokens of each piece scored")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    source = resolve_checkpoint(args.checkpoint)
    model = load_weights(source)
    scores = [(p.name, read_midi(p)) for p in bach_files("test")[: args.pieces]]
    pieces = [torch.from_numpy(encode(score).astype(np.int64))[: args.context] for _, score in scores]
    with torch.inference_mode():
        latents = [model.encode(ids[None])[0] if model.latent else None for ids in pieces]
    rows, decoders = [], []
    with tempfile.TemporaryDirectory() as folder:
        float32 = Path(folder) / "model.safetensors"
        save_weights(model, float32, {**read_metadata(source), "weights_dtype": "fp32"})
        for label, fmt, name in FORMATS:
            path = float32 if fmt is None else Path(export_model(float32, fmt, Path(folder) / name).out)
            start = time.perf_counter()
            decoder = OnnxDecoder(path, args.threads) if path.suffix == ".onnx" else load_decoder(path)
            load_s = time.perf_counter() - start
            decoders.append(decoder)
            rows.append({
                "format": label,
                "bytes": path.stat().st_size,
                "load_s": load_s,
                "tokens_per_s": 0.0,
                "loss": mean_loss(decoder, pieces, latents),
                "evaluate_bits_per_token": (
                    score_likelihood(decoder.model, scores, max_context=args.context).bits_per_token
                    if isinstance(decoder, TorchDecoder) else None
                ),
            })  # fmt: skip
    # Rounds over all formats, best of each: a load change on a shared machine hits every format.
    for _ in range(args.repeat):
        for row, decoder in zip(rows, decoders, strict=True):
            row["tokens_per_s"] = max(row["tokens_per_s"], tokens_per_second(decoder, args.tokens))
    base = rows[0]
    n_params = sum(p.numel() for p in model.parameters())
    n_tokens = sum(len(p) for p in pieces)
    print(f"checkpoint {source} ({model.config.mode}, {n_params:,} parameters)")
    print(f"torch {torch.__version__}, {args.threads} threads, {args.tokens} tokens decoded, "
          f"{len(pieces)} test chorales ({n_tokens:,} tokens)")  # fmt: skip
    print("\n| format | size | vs float32 | load | tokens/s | vs float32 | loss (nats/token) | loss change "
          "| aurl.evaluate bits/token |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['format']} | {row['bytes'] / 1e6:.2f} MB | {100 * row['bytes'] / base['bytes']:.0f}% "
            f"| {row['load_s'] * 1000:.0f} ms | {row['tokens_per_s']:.0f} | "
            f"{row['tokens_per_s'] / base['tokens_per_s']:.2f}x | {row['loss']:.4f} | "
            f"{100 * (row['loss'] / base['loss'] - 1):+.2f}% | {_bits(row['evaluate_bits_per_token'])} |"
        )
    if args.json is not None:
        args.json.write_text(json.dumps({"checkpoint": str(source), "rows": rows}, indent=1))


def _bits(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


if __name__ == "__main__":
    main()
