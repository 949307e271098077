"""The musical quality tracker: at each evaluation, sample a few short pieces and measure them.

Pieces are drawn with `aurl.sample.generate_ids`, which keeps the token grammar, so every drawn
token is valid by construction. The token validity rate therefore measures the model itself: the
probability mass its next-token distributions put on tokens the grammar allows, averaged over the
positions of the samples (1.0: an unconstrained draw would always be valid).

Ten metrics per piece, averaged over the samples (NaN where a piece lacks what one needs, e.g. an
empty sample has no pitch range): token validity rate, pitch range (semitones), pitch-class
entropy (bits), scale consistency (share of notes in the best fitting major or minor scale),
polyphony (mean pitches sounding when any sound), note density (notes per beat), empty-beat rate,
groove consistency, repetition rate, mean inter-onset interval (beats). All but the first and the
repetition rate come from `aurl.evaluate.metrics` on the 32nd-note grid. The repetition rate is
the share of the piece's melodic 3-interval patterns (pitch steps between four successive
onset-ordered notes) that already occurred earlier in it. The samples are written as MIDI under
run_dir/samples/step-NNNNNNNN/.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from aurl.evaluate import metrics
from aurl.midi import write_midi
from aurl.models import MusicTransformerVAEGAN
from aurl.tokens import GrammarState, decode
from aurl.train.device import same_rng

QUALITY_METRICS = (
    "token_validity",
    "pitch_range",
    "pitch_class_entropy",
    "scale_consistency",
    "polyphony",
    "note_density",
    "empty_beat_rate",
    "groove_consistency",
    "repetition_rate",
    "mean_ioi",
)
_PATTERN = 3  # intervals per repeated pattern


def repetition_rate(pitches: np.ndarray) -> float:
    """Share of the 3-interval patterns of an onset-ordered pitch sequence seen earlier in it (NaN if none).

    Args:
        pitches: (N,) MIDI pitches in onset order (ties broken by pitch).
    """
    steps = np.diff(np.asarray(pitches, dtype=np.int64))
    if len(steps) < _PATTERN:
        return float("nan")
    windows = np.lib.stride_tricks.sliding_window_view(steps, _PATTERN)
    n_distinct = len(np.unique(windows, axis=0))
    return 1.0 - n_distinct / len(windows)


def grammar_masks(ids: np.ndarray) -> np.ndarray:
    """(T - 1, V) bool: row t holds the tokens the grammar allows after ids[: t + 1].

    Tokens the grammar refuses are skipped (the state stays), as `aurl.tokens.decode` reads them.
    """
    state = GrammarState()
    rows = []
    for token in ids[:-1]:
        state.advance(int(token))
        rows.append(state.mask())
    return np.stack(rows) if rows else np.zeros((0, len(GrammarState().mask())), bool)


@torch.no_grad()
def valid_mass(model: MusicTransformerVAEGAN, ids: np.ndarray) -> float:
    """Mean probability the model's next-token distributions put on grammatical tokens along `ids`."""
    if len(ids) < 2:
        return float("nan")
    device = next(model.parameters()).device
    x = torch.as_tensor(ids, dtype=torch.long, device=device)[None]
    batch = {"ids": x, "mask": torch.ones_like(x, dtype=torch.bool)}
    probs = model(batch)["logits"][0, :-1].float().softmax(-1)
    allowed = torch.from_numpy(grammar_masks(ids)).to(device)
    return float((probs * allowed).sum(-1).mean())


def piece_quality(ids: np.ndarray, validity: float = float("nan")) -> dict[str, float]:
    """The quality metrics of one token sequence (see the module docstring).

    Args:
        ids: (T,) token ids.
        validity: the token validity rate measured by `valid_mass` (it needs the model).
    """
    ids = np.asarray(ids, dtype=np.int64)
    grid = metrics.to_resolution(decode(ids), metrics.GRID_STEPS_PER_BEAT)
    pitched = ~grid.is_drum
    order = np.lexsort((grid.pitch[pitched], grid.onset[pitched]))
    return {
        "token_validity": validity,
        "pitch_range": float(metrics.pitch_range(grid)) if grid.n_notes else float("nan"),
        "pitch_class_entropy": metrics.pitch_class_entropy(grid),
        "scale_consistency": metrics.scale_consistency(grid),
        "polyphony": metrics.polyphony(grid),
        "note_density": metrics.notes_per_beat(grid),
        "empty_beat_rate": metrics.empty_beat_rate(grid),
        "groove_consistency": metrics.groove_consistency(grid),
        "repetition_rate": repetition_rate(grid.pitch[pitched][order]),
        "mean_ioi": metrics.mean_ioi_beats(grid),
    }


def summarize(pieces: list[dict[str, float]]) -> dict[str, float]:
    """Mean of each metric over the pieces where it is defined (NaN where it is nowhere)."""
    out = {}
    for name in QUALITY_METRICS:
        values = [p[name] for p in pieces if p.get(name) is not None and math.isfinite(p[name])]
        out[name] = float(np.mean(values)) if values else float("nan")
    return out


def sample_quality(
    model: MusicTransformerVAEGAN,
    *,
    count: int,
    max_tokens: int,
    seed: int,
    out_dir: Path | None,
) -> dict[str, float]:
    """Sample `count` pieces of at most `max_tokens` tokens, save them as MIDI, and measure them.

    Sampling runs in eval mode under its own seed and leaves the training generators untouched.

    Returns:
        The ten metric means, plus "samples" (how many) and "sample_tokens" (mean length).
    """
    from aurl.sample.decoder import TorchDecoder  # sampling sits beside evaluate, below train
    from aurl.sample.generate import generate_ids

    was_training = model.training
    try:
        with same_rng(), torch.no_grad():
            torch.manual_seed(seed)  # the latent's own noise (vae modes), if any is drawn
            sequences = generate_ids(TorchDecoder(model), num=count, max_tokens=max_tokens, seed=seed)
            sequences = [np.asarray(s, dtype=np.int64) for s in sequences]
            validity = [valid_mass(model, ids) for ids in sequences]
    finally:
        model.train(was_training)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        for i, ids in enumerate(sequences):
            write_midi(decode(ids), out_dir / f"sample-{i:02d}.mid")
    summary = summarize([piece_quality(ids, v) for ids, v in zip(sequences, validity, strict=True)])
    lengths = [len(s) for s in sequences]
    return {
        **summary,
        "samples": float(len(sequences)),
        "sample_tokens": float(np.mean(lengths)) if lengths else 0.0,
    }
