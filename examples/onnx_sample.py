"""Sample a piece from an exported ONNX model with onnxruntime and numpy alone, and write it as MIDI.

No PyTorch: the ONNX file holds the decoder's incremental step, whose KV cache buffers and beat
state are plain inputs and outputs (docs/export.md, "The ONNX step"). aurl.tokens supplies the grammar mask
(so every sampled token is legal) and turns the ids into a score; aurl.midi writes the file.

    aurl export bundled --format onnx --out bach.onnx
    python examples/onnx_sample.py bach.onnx --out song.mid --tokens 1024 --temperature 0.9 --seed 7

The same loop ports to any onnxruntime binding (C, C++, C#, Java, JavaScript in a browser).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import onnxruntime as ort

from aurl.midi import write_midi
from aurl.tokens import GrammarState, decode, vocab


def load(path: str) -> tuple[ort.InferenceSession, dict]:
    """The session and the step's layout (names and sizes of the cache), from the file's metadata."""
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    if meta.get("vocab_version") != vocab.VOCAB_VERSION:
        raise SystemExit(
            f"{path} was made for vocabulary {meta.get('vocab_version')}, not {vocab.VOCAB_VERSION}"
        )
    return session, json.loads(meta["aurl.export.step_layout"])


def empty_state(layout: dict, capacity: int) -> dict[str, np.ndarray]:
    """Inputs of the first step for one stream: start beat, cache buffers of `capacity` slots with
    none filled yet, no block summaries yet (hierarchical attention), and z = 0 in vae modes."""
    state = {"beat": np.array([layout["start_beat"]], np.int64), "past_length": np.array([0], np.int64)}
    for i in range(layout["layers"]):
        for kind in ("key", "value"):
            shape = (1, layout["heads"], capacity, layout["head_dim"])
            state[f"past_{kind}.{i}"] = np.zeros(shape, np.float32)
            if layout["attention"] == "hierarchical":  # (1, heads, finished blocks, head_dim)
                state[f"past_summary_{kind}.{i}"] = np.zeros(shape[:2] + (0, shape[3]), np.float32)
    if layout["latent"]:  # the prior mean: no bars or windows given, each reads z = 0
        zg, zb, zf = layout["latent"]
        state |= {
            "z_piece": np.zeros((1, zg), np.float32),
            "z_bar": np.zeros((1, 0, zb), np.float32),
            "z_fine": np.zeros((1, 0, zf), np.float32),
        }
    return state


def step(session: ort.InferenceSession, layout: dict, token: int, state: dict) -> np.ndarray:
    """Feed one token; return the next token's logits (V,). The state moves on in place: the
    token's keys and values go into the next free slot of the buffers, and the summary of a block
    the token finishes (hierarchical attention) after the summaries before it."""
    logits, beat, *new = session.run(None, {"ids": np.array([[token]], np.int64), **state})
    slot, layers = int(state["past_length"][0]), layout["layers"]
    for i in range(layers):
        for j, kind in enumerate(("key", "value")):
            state[f"past_{kind}.{i}"][:, :, slot] = new[2 * i + j][:, :, 0]
            if layout["attention"] == "hierarchical":
                name = f"past_summary_{kind}.{i}"
                state[name] = np.concatenate([state[name], new[2 * layers + 2 * i + j]], axis=2)
    state["beat"], state["past_length"] = beat, np.array([slot + 1], np.int64)
    return logits[0, -1]


def choose(
    logits: np.ndarray, allowed: np.ndarray, temperature: float, top_k: int, rng: np.random.Generator
) -> int:
    """A token drawn from the allowed ones: temperature, then the top k, then softmax."""
    scores = np.where(allowed, logits / temperature, -np.inf)
    if top_k and top_k < allowed.sum():
        scores[scores < np.sort(scores)[-top_k]] = -np.inf
    probs = np.exp(scores - scores.max())
    return int(rng.choice(len(probs), p=probs / probs.sum()))


def sample(path: str, tokens: int, temperature: float, top_k: int, seed: int) -> np.ndarray:
    """Token ids from BOS to EOS (or to the budget), every one allowed by the grammar."""
    session, layout = load(path)
    rng = np.random.default_rng(seed)
    grammar = GrammarState()
    ids = [vocab.BOS]
    grammar.advance(vocab.BOS)
    state = empty_state(layout, capacity=tokens + 1)  # one slot per token fed, BOS included
    logits = step(session, layout, vocab.BOS, state)
    for _ in range(tokens):
        token = choose(logits, grammar.mask(), temperature, top_k, rng)
        grammar.advance(token)
        ids.append(token)
        if token == vocab.EOS:
            break
        logits = step(session, layout, token, state)
    return np.array(ids, np.int64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="an .onnx file written by `aurl export --format onnx`")
    parser.add_argument("--out", default="song.mid", help="the MIDI file to write")
    parser.add_argument("--tokens", type=int, default=1024, help="most tokens to sample")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-k", type=int, default=0, help="keep the k likeliest tokens (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    ids = sample(args.model, args.tokens, args.temperature, args.top_k, args.seed)
    score = decode(ids)
    write_midi(score, args.out, text=f"sampled from {args.model} with onnxruntime, seed {args.seed}")
    print(f"{args.out}: {len(ids)} tokens, {score.n_notes} notes")


if __name__ == "__main__":
    main()
