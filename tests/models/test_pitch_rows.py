"""Shared pitch rows (model.shared_pitch_rows): NoteOn rows built from own, pitch-class and octave rows."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from aurl.errors import ConfigError
from aurl.models import MusicTransformerVAEGAN, TokenTable, load_weights, save_weights
from aurl.models.pitch_rows import fold
from aurl.tokens import vocab
from models.builders import batch_of, synthetic_ids, tiny


def _shared(table: TokenTable, mode: str = "vae") -> MusicTransformerVAEGAN:
    """A tiny model with shared pitch rows set to random values (they start at zero)."""
    model = tiny(mode, table, dropout=0.0, shared_pitch_rows=True)
    rows = model.embed.parametrizations.weight[0]
    with torch.no_grad():
        rows.pitch_class.normal_(generator=torch.Generator().manual_seed(1))
        rows.octave.normal_(generator=torch.Generator().manual_seed(2))
    return model.eval()


def test_note_on_rows_share_their_pitch_class_and_octave_rows(table: TokenTable) -> None:
    model = _shared(table)
    own = model.embed.parametrizations.weight.original
    rows = model.embed.parametrizations.weight[0]
    added = model.embed.weight - own
    for pitch in (0, 60, 61, 72, 127):
        expected = rows.pitch_class[pitch % 12] + rows.octave[pitch // 12]
        torch.testing.assert_close(added[vocab.NOTE_ON.id(pitch)], expected)
    others = torch.ones(vocab.VOCAB_SIZE, dtype=torch.bool)
    others[vocab.NOTE_ON.start : vocab.NOTE_ON.stop] = False
    assert torch.equal(added[others], torch.zeros_like(added[others]))  # NoteOff rows too stay their own
    assert torch.equal(model.head.weight, model.embed.weight)  # the output reads the same table


def test_a_new_model_starts_as_a_plain_one(table: TokenTable) -> None:
    shared = tiny("transformer", table, shared_pitch_rows=True)
    plain = tiny("transformer", table)
    assert torch.equal(shared.embed.weight, plain.embed.weight)
    ids = torch.as_tensor(synthetic_ids(2))[None]
    assert torch.equal(shared.eval().decode(None, ids), plain.eval().decode(None, ids))


def test_the_shared_rows_learn(table: TokenTable) -> None:
    model = tiny("vae", table, dropout=0.0, shared_pitch_rows=True)
    model(batch_of(synthetic_ids(3)))["loss"].backward()
    rows = model.embed.parametrizations.weight[0]
    assert rows.pitch_class.grad is not None and rows.pitch_class.grad.abs().sum() > 0
    assert rows.octave.grad is not None and rows.octave.grad.abs().sum() > 0
    assert sum(p is rows.pitch_class for p in model.parameters()) == 1  # one parameter, shared by both ends


def test_save_and_load_keep_every_shared_row(table: TokenTable, tmp_path: Path) -> None:
    model = _shared(table)
    save_weights(model, tmp_path / "m.safetensors")
    loaded = load_weights(tmp_path / "m.safetensors")
    assert loaded.config.shared_pitch_rows
    assert torch.equal(loaded.head.weight, model.head.weight)
    ids = torch.as_tensor(synthetic_ids(2))[None]
    z = model.encode(ids)[0]
    assert torch.equal(loaded.decode(z, ids), model.decode(z, ids))


def test_fold_keeps_the_logits_and_ties_a_plain_table(table: TokenTable) -> None:
    model = _shared(table, "transformer")
    ids = torch.as_tensor(synthetic_ids(2))[None]
    before = model.decode(None, ids)
    fold(model)
    assert type(model.embed) is torch.nn.Embedding and model.head.weight is model.embed.weight
    torch.testing.assert_close(model.decode(None, ids), before, rtol=0, atol=1e-5)


def test_shared_rows_need_to_know_the_note_on_ids(table: TokenTable) -> None:
    without = TokenTable(**{**table.__dict__, "note_on_start": -1})
    with pytest.raises(ConfigError, match="note_on_start"):
        tiny("transformer", without, shared_pitch_rows=True)
    with pytest.raises(ConfigError, match="no room for 128 NoteOn ids"):
        TokenTable(**{**table.__dict__, "note_on_start": vocab.VOCAB_SIZE - 10})
