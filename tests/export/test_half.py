"""fp16 / bf16 exports: half the size, same metadata, loadable by aurl.models.load_weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from aurl.export import export_model, load_decoder
from aurl.export.metadata import DTYPE_KEY, FORMAT_KEY
from aurl.models import load_weights, read_metadata
from aurl.sample.decoder import TorchDecoder

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


@pytest.mark.parametrize("fmt", ["fp16", "bf16"])
def test_half_export_verifies_and_loads_as_float32(fmt: str, vae_gan_file: Path, tmp_path: Path) -> None:
    out = tmp_path / f"model.{fmt}.safetensors"
    result = export_model(vae_gan_file, fmt, out, verify=True)
    assert result.verified is True and result.file_format == fmt
    assert [c.name for c in result.checks][0] == f"tensors vs float32 cast to {fmt}"
    assert result.checks[0].max_abs_diff == 0.0
    assert abs(result.loss_increase_pct or 0.0) < 0.5
    with safe_open(str(out), framework="pt") as handle:
        dtypes = {handle.get_slice(k).get_dtype() for k in handle.keys()}  # noqa: SIM118
    assert {"F16" if fmt == "fp16" else "BF16", "I64", "BOOL"} >= dtypes - {"F32"}
    assert "F32" not in dtypes
    model = load_weights(out)  # upcast on load: runs on any CPU
    assert all(p.dtype == torch.float32 for p in model.parameters())
    original = load_weights(vae_gan_file)
    weight = original.decoder.blocks[0].attn.qkv.weight
    assert torch.equal(model.decoder.blocks[0].attn.qkv.weight, weight.to(DTYPES[fmt]).float())


def test_half_keeps_the_metadata_and_halves_the_size(transformer_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "model.fp16.safetensors"
    result = export_model(transformer_file, "fp16", out)
    assert result.verified is None and result.checks == []
    source, exported = read_metadata(transformer_file), read_metadata(out)
    assert {k: exported[k] for k in source} == source
    assert exported[FORMAT_KEY] == "fp16" and exported[DTYPE_KEY] == "fp16"
    # Half of the float tensors; the training-only follow table (0.6 MB) is left out as well.
    float_bytes = sum(
        p.numel() * 4 for p in load_weights(transformer_file).state_dict().values() if p.is_floating_point()
    )
    assert out.stat().st_size < transformer_file.stat().st_size - float_bytes / 2
    assert result.size_ratio < 0.5


def test_half_file_decodes_through_load_decoder(transformer_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "model.bf16.safetensors"
    export_model(transformer_file, "bf16", out)
    decoder = load_decoder(out)
    assert isinstance(decoder, TorchDecoder)
    logits, _ = decoder.step(torch.tensor([[1, 5, 300]]), decoder.start(1))
    assert logits.shape == (1, 3, 774) and torch.isfinite(logits).all()
