"""int8 exports stored as safetensors (torch dynamic quantisation): no onnx package involved."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from aurl.errors import CheckpointError
from aurl.export import export_model, is_export, load_decoder, load_int8
from aurl.export.metadata import FORMAT_KEY, INT8_FORMAT, QUANTIZED_KEY
from aurl.export.quantize import quantize, save_int8
from aurl.models import load_weights, read_metadata
from aurl.sample.decoder import TorchDecoder
from aurl.sample.generate import generate_ids
from aurl.sample.processors import TopK
from export.conftest import SLIDING, save_tiny, tiny_model


def _header(path: Path) -> dict:
    """The safetensors JSON header: the file is tensors and JSON, nothing to unpickle."""
    with open(path, "rb") as handle:
        (size,) = struct.unpack("<Q", handle.read(8))
        return json.loads(handle.read(size))


def test_int8_export_verifies_and_is_small(vae_gan_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "model.int8.safetensors"
    result = export_model(vae_gan_file, "int8", out, verify=True)
    assert result.verified is True and result.file_format == INT8_FORMAT
    checks = {c.name: c for c in result.checks}
    assert checks["file vs quantised model"].max_abs_diff == 0.0
    assert 0.0 < checks["chorale prefix vs float32"].max_abs_diff < 1.0
    assert abs(result.loss_increase_pct or 0.0) < 2.0
    header = _header(out)
    assert header["decoder.blocks.0.attn.qkv.weight_int8"]["dtype"] == "I8"
    assert "embed.weight" not in header and "table_follow" not in header
    meta = read_metadata(out)
    assert (
        meta[FORMAT_KEY] == INT8_FORMAT
        and meta["vocab_version"] == read_metadata(vae_gan_file)["vocab_version"]
    )
    assert "head" in json.loads(meta[QUANTIZED_KEY])
    assert not any(name.startswith("discriminator") for name in json.loads(meta[QUANTIZED_KEY]))


@pytest.mark.parametrize("overrides", [SLIDING, {"shared_pitch_rows": True}], ids=["sliding", "shared_rows"])
def test_load_int8_rebuilds_the_quantised_model_exactly(overrides: dict, tmp_path: Path) -> None:
    model = tiny_model("vae", **overrides)  # shared pitch rows: quantised as the one table they compute
    quantized = quantize(model)
    path = tmp_path / "q.safetensors"
    save_int8(quantized, path, {})
    loaded = load_int8(path)
    assert type(loaded.head) is type(quantized.head) and type(loaded.head) is not nn.Linear
    assert torch.equal(loaded.embed.weight, quantized.embed.weight)
    ids = torch.randint(4, 774, (2, 50), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        a, _ = loaded.step(ids)
        b, _ = quantized.step(ids)
        c, _ = model.step(ids)
    assert torch.equal(a, b)
    assert 0.0 < float((a - c).abs().max()) < 0.5 * float(c.abs().max())


def test_int8_weights_are_per_channel_and_a_quarter_of_float32(
    transformer_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "model.int8.safetensors"
    export_model(transformer_file, "int8", out)
    header = _header(out)
    qkv = header["decoder.blocks.0.attn.qkv.weight_int8"]
    assert header["decoder.blocks.0.attn.qkv.weight_scale"]["shape"] == [qkv["shape"][0]]
    int8 = sum(np.prod(v["shape"]) for k, v in header.items() if k.endswith(".weight_int8"))
    floats = sum(p.numel() for p in load_weights(transformer_file).parameters())
    assert int8 > 0.9 * floats  # nearly every weight is int8 (the tied embedding/head included)


def test_int8_greedy_decoding_through_load_decoder(transformer_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "model.int8.safetensors"
    export_model(transformer_file, "int8", out)
    decoder = load_decoder(out)
    assert isinstance(decoder, TorchDecoder)
    twice = [generate_ids(decoder, num=2, max_tokens=30, processors=[TopK(1)], seed=s) for s in (0, 5)]
    assert all(len(ids) > 5 for ids in twice[0])
    assert all(np.array_equal(a, b) for a, b in zip(*twice, strict=True))  # greedy ignores the seed


def test_int8_of_hierarchical_attention_works(tmp_path: Path) -> None:
    source = save_tiny(tmp_path, "hier", attention="hierarchical", local_window=8, global_tokens=3)
    result = export_model(source, "int8", tmp_path / "hier.int8.safetensors", verify=True)
    assert result.verified is True and result.attention == "hierarchical"


def test_int8_file_is_refused_as_a_source(transformer_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "model.int8.safetensors"
    export_model(transformer_file, "int8", out)
    with pytest.raises(CheckpointError, match="already an int8 export"):
        export_model(out, "fp16", tmp_path / "again.safetensors")
    with pytest.raises(CheckpointError, match="not an aurl int8 export"):
        load_int8(transformer_file)


def test_is_export_tells_int8_files_from_float_ones(transformer_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "model.int8.safetensors"
    export_model(transformer_file, "int8", out)
    half = tmp_path / "model.fp16.safetensors"
    export_model(transformer_file, "fp16", half)
    assert is_export(out)
    assert not is_export(transformer_file) and not is_export(half)  # load_weights reads those
    assert not is_export(tmp_path / "absent.safetensors")
