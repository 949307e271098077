"""Shared pitch rows: NoteOn token vectors built from their own row plus a pitch-class and an octave row.

A plain token table learns the 128 NoteOn rows independently, so what the model learns about C4
(that it belongs to C major, say) says nothing about C5. With `model.shared_pitch_rows`, the row of
NoteOn p is `own[p] + pitch_class[p % 12] + octave[p // 12]`, in the input embedding and in the
output head tied to it, so every note of a pitch class moves its logit together. The shared rows
start at zero (the model starts as a plain one) and train with the rest.

It is a `torch.nn.utils.parametrize` parametrization of the token table's weight, registered on
the embedding and the head together, so both read the same computed table and the file stores the
own rows under `embed.parametrizations.weight.original` next to the shared ones. The table is
computed at every access, which costs a decoding step a fifth to a third of its time on a CPU: `fold`
gives a model that will only decode (sampling) or whose matrix is rewritten (int8 quantisation) a
plain tied table instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from aurl.models.table import N_PITCHES

if TYPE_CHECKING:
    from aurl.models.model import MusicTransformerVAEGAN

_OCTAVES = (N_PITCHES + 11) // 12  # 11: pitches 120-127 start the last octave


class SharedPitchRows(nn.Module):
    """Adds the pitch-class and octave rows to the NoteOn rows of a (V, D) token table.

    Args:
        vocab_size, d_model: the table's shape.
        note_on_start: id of the NoteOn token of pitch 0 (the token table's `note_on_start`).
    """

    pitch_class_of: Tensor  # (V,) buffers: each token's shared rows
    octave_of: Tensor

    def __init__(self, vocab_size: int, d_model: int, note_on_start: int) -> None:
        super().__init__()
        pitch = torch.arange(N_PITCHES)
        # Index 12 (pitch class) and _OCTAVES (octave) point at an appended zero row: other tokens.
        pitch_class = torch.full((vocab_size,), 12)
        pitch_class[note_on_start : note_on_start + N_PITCHES] = pitch % 12
        octave = torch.full((vocab_size,), _OCTAVES)
        octave[note_on_start : note_on_start + N_PITCHES] = pitch // 12
        self.register_buffer("pitch_class_of", pitch_class, persistent=False)
        self.register_buffer("octave_of", octave, persistent=False)
        self.pitch_class = nn.Parameter(torch.zeros(12, d_model))
        self.octave = nn.Parameter(torch.zeros(_OCTAVES, d_model))

    def forward(self, own: Tensor) -> Tensor:
        zero = own.new_zeros(1, own.shape[1])
        pitch_class = torch.cat([self.pitch_class.to(own.dtype), zero])[self.pitch_class_of]
        octave = torch.cat([self.octave.to(own.dtype), zero])[self.octave_of]
        return own + pitch_class + octave


def share_pitch_rows(embed: nn.Embedding, head: nn.Linear, note_on_start: int) -> None:
    """Parametrize the tied `embed` and `head` weights with one SharedPitchRows (after initialisation)."""
    rows = SharedPitchRows(embed.num_embeddings, embed.embedding_dim, note_on_start)
    parametrize.register_parametrization(embed, "weight", rows)
    parametrize.register_parametrization(head, "weight", rows)


def fold(model: MusicTransformerVAEGAN) -> None:
    """Give `model` a plain, tied `embed` and `head` holding the table they compute (no-op without
    shared rows). New modules replace the parametrized ones: removing a parametrization edits its
    class, which a deep copy of the model shares with the original."""
    if not parametrize.is_parametrized(model.embed, "weight"):
        return
    with torch.no_grad():
        table = model.embed.weight.detach().clone()
    embed = nn.Embedding.from_pretrained(table, freeze=True)
    head = nn.Linear(table.shape[1], table.shape[0], bias=False)
    head.weight = embed.weight
    model.embed, model.head = embed, head
