"""Builders for the model tests: the real token table, synthetic pieces, batches and tiny models."""

from __future__ import annotations

import numpy as np
import torch

from aurl.models import MusicTransformerVAEGAN, TokenTable
from aurl.tokens import vocab

MODES = ("transformer", "vae", "vae_gan")
KINDS = ("full", "hierarchical", "sliding")
# Windows small enough that short test sequences cross several blocks.
SMALL_WINDOWS = {"local_window": 8, "global_tokens": 3, "sliding_window": 12, "sliding_overlap": 4}


def real_table() -> TokenTable:
    """The token table of aurl's 774-token vocabulary, as train/ and sample/ build it."""
    return TokenTable(
        time_advance=vocab.time_advance_table(),
        bar_start=vocab.bar_start_table(),
        bar_steps=vocab.bar_steps_table(),
        pad_id=vocab.PAD,
        bos_id=vocab.BOS,
        eos_id=vocab.EOS,
        mask_id=vocab.MASK,
        steps_per_beat=vocab.STEPS_PER_BEAT,
        note_on_start=vocab.NOTE_ON.start,
    )


def synthetic_ids(n_bars: int = 4, seed: int = 0) -> np.ndarray:
    """A grammatical-looking piece from vocab ids: header, then bars of chords in 3/4 and then 4/4."""
    rng = np.random.default_rng(seed)
    ids = [vocab.BOS, vocab.BAR, vocab.token_id("TimeSig_3/4"), vocab.TEMPO.id(vocab.DEFAULT_TEMPO_INDEX)]
    for bar in range(n_bars):
        if bar:
            ids.append(vocab.BAR)
        if bar == 2:
            ids.append(vocab.token_id("TimeSig_4/4"))
        for _ in range(3 if bar < 2 else 4):  # one chord per beat
            pitches = np.sort(rng.choice(np.arange(55, 75), 2, replace=False))
            ids += [vocab.NOTE_ON.id(int(p)) for p in pitches]
            ids.append(vocab.TIME_SHIFT.id(vocab.STEPS_PER_BEAT - 1))  # TimeShift_8: one beat
            ids += [vocab.NOTE_OFF.id(int(p)) for p in pitches]
    return np.array([*ids, vocab.EOS], np.int64)


def batch_of(*sequences: np.ndarray) -> dict[str, torch.Tensor]:
    """Right-padded batch {"ids", "mask"} of the sequences."""
    t = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), t), vocab.PAD, dtype=torch.long)
    mask = torch.zeros(len(sequences), t, dtype=torch.bool)
    for i, s in enumerate(sequences):
        ids[i, : len(s)] = torch.as_tensor(s)
        mask[i, : len(s)] = True
    return {"ids": ids, "mask": mask}


def tiny(mode: str, table: TokenTable, seed: int = 0, **overrides: object) -> MusicTransformerVAEGAN:
    """A seeded tiny-preset model."""
    torch.manual_seed(seed)
    return MusicTransformerVAEGAN.from_preset("tiny", mode=mode, table=table, **overrides)
