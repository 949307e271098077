"""Where a model's held-out bits go: bits per token by the family of the predicted token, as the model
scores it and under the token grammar that `aurl sample` always applies.

For each piece of the split (tokens 0 .. 2047, the context the bundled model was trained on), every
token after BOS is scored by teacher forcing twice: with the model's softmax over the whole
vocabulary, and with the softmax over the tokens the grammar allows at that point
(`GrammarState.mask`, the mask the sampler applies before drawing; `train.quality.grammar_masks`
gives them along a piece). The gap is what the model spends on tokens the grammar rules out, i.e.
what training on the masked distribution could save at most. vae modes read each piece's
posterior mean, so the bits are reconstruction bits (no KL).
Calibration: per family, the tokens the model expects there under the grammar (the sum of their
probabilities over every position) next to the tokens the pieces hold. A model whose expected
counts match, scored with the true history, but whose samples drift from the music (more pitch
classes, plainer rhythm) drifts through its own draws, not through its predictions.
It also times the grammar's own pass, the cost of computing those masks on the host.

Run: python benchmarks/loss_by_family.py [--checkpoint bundled] [--split test]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from aurl.data.corpus import bach_files
from aurl.midi import read_midi
from aurl.models import load_weights
from aurl.models.bundled import resolve_checkpoint
from aurl.tokens import encode, vocab
from aurl.train.quality import grammar_masks

CONTEXT = 2048


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="bundled", help="model file, run folder or 'bundled'")
    parser.add_argument("--split", default="test", choices=("train", "test"), help="chorales to score")
    args = parser.parse_args()

    model = load_weights(resolve_checkpoint(args.checkpoint))
    family_of = np.zeros(vocab.VOCAB_SIZE, np.int64)
    for i, family in enumerate(vocab.FAMILIES.values()):
        family_of[family.start : family.stop] = i
    n = len(vocab.FAMILIES)
    raw, masked, count, expected = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
    grammar_s = 0.0
    with torch.no_grad():
        for file in bach_files(args.split):
            ids = encode(read_midi(file)).astype(np.int64)[:CONTEXT]
            began = time.perf_counter()
            allowed = torch.from_numpy(grammar_masks(ids))
            grammar_s += time.perf_counter() - began
            x = torch.as_tensor(ids)[None]
            z = model.encode(x)[0] if model.latent else None
            logits = model.step(x, None, z=z)[0][0, :-1].float()
            target = x[0, 1:]
            under = logits.masked_fill(~allowed, float("-inf"))
            for total, scores in ((raw, logits), (masked, under)):
                bits = F.cross_entropy(scores, target, reduction="none").numpy() / np.log(2)
                np.add.at(total, family_of[target.numpy()], bits)
            np.add.at(expected, family_of, under.softmax(-1).sum(0).numpy())
            np.add.at(count, family_of[target.numpy()], 1)
    tokens = count.sum()
    print(f"{args.checkpoint}, {args.split} split: {int(tokens):,} tokens scored (vae: posterior mean)")
    print(
        f"{'family':10} {'tokens':>7} {'bits/token':>11} {'under grammar':>14} {'share of bits':>14}"
        f" {'expected/held':>14}"
    )
    for i, name in enumerate(vocab.FAMILIES):
        if count[i]:
            share, bits, under = count[i] / tokens, raw[i] / count[i], masked[i] / count[i]
            print(
                f"{name:10} {share:7.1%} {bits:11.3f} {under:14.3f} {raw[i] / raw.sum():14.1%}"
                f" {expected[i]:7.0f}/{count[i]:<6.0f}"
            )
    print(f"{'all':10} {1:7.0%} {raw.sum() / tokens:11.3f} {masked.sum() / tokens:14.3f}")
    print(f"grammar pass: {grammar_s / tokens * 1e6:.1f} us per token")


if __name__ == "__main__":
    main()
