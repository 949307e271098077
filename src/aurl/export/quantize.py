"""int8 dynamic quantisation of the linear layers, stored without pickle.

Two files, chosen by the output's suffix:

- `.safetensors` (the default): `torch.ao.quantization.quantize_dynamic` with per-channel int8
  weights; the file holds each quantised layer's int8 weight, float64 per-row scales and zero
  points, every other tensor as float32, and the usual aurl metadata. `load_int8` rebuilds the
  model from the config and swaps in dynamic int8 linears: it runs through the same decoding code
  as the float model, in every mode and attention kind, with no package beyond torch.
- `.onnx`: onnxruntime's dynamic quantisation of the exported ONNX step (needs the export extra),
  for runtimes without Python.

The output head shares its matrix with the token embedding, so only the int8 matrix is stored and
the embedding reads its dequantised rows (the quantised model is built that way before saving, so
the file reproduces it exactly). A model with shared pitch rows is folded to its computed table
first (models/pitch_rows.py), and rebuilt folded.
"""

from __future__ import annotations

import copy
import json
import logging
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from aurl.atomic import atomic_path
from aurl.config import ModelConfig
from aurl.errors import CheckpointError
from aurl.export.errors import require
from aurl.export.metadata import INT8_FORMAT, QUANTIZED_KEY
from aurl.export.onnx import read_onnx_metadata
from aurl.models import MusicTransformerVAEGAN, TokenTable
from aurl.models.pitch_rows import fold
from aurl.models.weights import CONFIG_KEY, TABLE_KEY

log = logging.getLogger(__name__)

_INT8, _SCALE, _ZERO = "weight_int8", "weight_scale", "weight_zero_point"


def _dynamic() -> tuple[Any, Any]:
    """torch's dynamic int8 Linear and its per-channel qconfig (quiet about their deprecation)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization announces its move to torchao
        from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear
        from torch.ao.quantization import per_channel_dynamic_qconfig
    return DynamicLinear, per_channel_dynamic_qconfig


def quantizable(model: nn.Module) -> list[str]:
    """Names of the linear layers to quantise: all but the discriminator's (training only)."""
    return [
        name
        for name, module in model.named_modules()
        if type(module) is nn.Linear and not name.startswith("discriminator")
    ]


def quantize(model: MusicTransformerVAEGAN) -> MusicTransformerVAEGAN:
    """A copy of the model with int8 dynamic linears (per-channel weights), in eval mode.

    The token embedding is set to the dequantised rows of the (tied) int8 output head, which is
    what `save_int8` stores and `load_int8` rebuilds.
    """
    _, qconfig = _dynamic()
    plain = copy.deepcopy(model).float().eval()
    fold(plain)  # shared pitch rows: quantise the table they compute
    names = quantizable(plain)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torch.ao.quantization import quantize_dynamic

        quantized = quantize_dynamic(plain, dict.fromkeys(names, qconfig), dtype=torch.qint8)
    assert isinstance(quantized, MusicTransformerVAEGAN)
    _tie_embedding(quantized)
    return quantized.eval()


def _tie_embedding(model: MusicTransformerVAEGAN) -> None:
    head = model.head
    if hasattr(head, "weight") and callable(head.weight):  # a dynamic int8 Linear
        model.embed.weight = nn.Parameter(head.weight().dequantize(), requires_grad=False)


def int8_tensors(model: MusicTransformerVAEGAN) -> tuple[dict[str, Tensor], list[str]]:
    """The tensors `save_int8` writes, and the names of the quantised layers."""
    DynamicLinear, _ = _dynamic()
    layers = {n: m for n, m in model.named_modules() if isinstance(m, DynamicLinear)}
    tensors: dict[str, Tensor] = {}
    for name, value in model.state_dict().items():
        owner = name.rpartition(".")[0].removesuffix("._packed_params")
        if owner in layers or name == "embed.weight" or not isinstance(value, Tensor):
            continue
        tensors[name] = value.detach().contiguous()
    for name, layer in layers.items():
        weight, bias = layer._weight_bias()
        tensors[f"{name}.{_INT8}"] = weight.int_repr().contiguous()
        tensors[f"{name}.{_SCALE}"] = weight.q_per_channel_scales().contiguous()
        tensors[f"{name}.{_ZERO}"] = weight.q_per_channel_zero_points().contiguous()
        if bias is not None:
            tensors[f"{name}.bias"] = bias.detach().contiguous()
    return tensors, sorted(layers)


def save_int8(model: MusicTransformerVAEGAN, path: Path, metadata: dict[str, str]) -> None:
    """Write a model made by `quantize` to a safetensors file, atomically.

    Args:
        model: the quantised model.
        path: the .safetensors file to write.
        metadata: the export's metadata; the quantised layer names are added.
    """
    tensors, names = int8_tensors(model)
    meta = {
        **metadata,
        CONFIG_KEY: model.config.model_dump_json(),
        TABLE_KEY: json.dumps(model.table.scalars()),
        QUANTIZED_KEY: json.dumps(names),
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def load_int8(path: str | Path) -> MusicTransformerVAEGAN:
    """Rebuild the int8 model written by `save_int8`, in eval mode, on the CPU.

    Raises:
        CheckpointError: not an int8 export, or tensors that do not fit its config.
    """
    with safe_open(str(path), framework="pt") as handle:
        meta = dict(handle.metadata() or {})
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    if QUANTIZED_KEY not in meta or CONFIG_KEY not in meta:
        raise CheckpointError(f"'{path}' is not an aurl int8 export (no {QUANTIZED_KEY} metadata)")
    config = ModelConfig.model_validate_json(meta[CONFIG_KEY])
    names = json.loads(meta[QUANTIZED_KEY])
    tables = {k.removeprefix("table_"): v for k, v in tensors.items() if k.startswith("table_")}
    model = MusicTransformerVAEGAN(config, TokenTable.from_parts(json.loads(meta[TABLE_KEY]), tables))
    fold(model)  # as `quantize` stored it: one plain table
    plain = {k: v for k, v in tensors.items() if k.rpartition(".")[0] not in names}
    try:
        missing, unexpected = model.load_state_dict(plain, strict=False)
        for name in names:
            _swap_in(model, name, tensors)
    except (KeyError, RuntimeError, AttributeError) as error:
        raise CheckpointError(f"int8 model '{path}' does not fit its config: {str(error)[:160]}") from None
    expected = {"embed.weight", *(f"{n}.{p}" for n in names for p in ("weight", "bias"))}
    wrong = [k for k in missing if k not in expected] + list(unexpected)
    if wrong:
        raise CheckpointError(
            f"int8 model '{path}' does not fit its config: {len(wrong)} tensors, e.g. {wrong[0]}"
        )
    _tie_embedding(model)
    return model.eval()


def _swap_in(model: nn.Module, name: str, tensors: dict[str, Tensor]) -> None:
    """Replace the float Linear `name` by a dynamic int8 Linear holding the stored weights."""
    DynamicLinear, _ = _dynamic()
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    float_layer = getattr(parent, attr)
    if type(float_layer) is not nn.Linear:
        raise KeyError(f"{name} is not a linear layer of this model")
    weight = torch._make_per_channel_quantized_tensor(
        tensors.pop(f"{name}.{_INT8}"), tensors.pop(f"{name}.{_SCALE}"), tensors.pop(f"{name}.{_ZERO}"), 0
    )
    bias = tensors.pop(f"{name}.bias", None)
    layer = DynamicLinear(float_layer.in_features, float_layer.out_features, bias_=bias is not None)
    layer.set_weight_bias(weight, bias)
    setattr(parent, attr, layer)


def quantize_onnx(source: Path, path: Path, metadata: dict[str, str]) -> None:
    """onnxruntime's dynamic int8 quantisation (per-channel weights) of an exported ONNX step.

    The step first goes through onnxruntime's recommended pre-processing (ONNX shape inference and
    graph optimisation), which lets more MatMuls be quantised.

    Raises:
        MissingDependencyError: onnx or onnxruntime is not installed.
    """
    onnx = require("onnx", "int8 ONNX export")
    quantization = require("onnxruntime.quantization", "int8 ONNX export")
    shape_inference = require("onnxruntime.quantization.shape_inference", "int8 ONNX export")
    # The quantiser drops metadata_props; the float32 step's (layout, opset) are carried over.
    merged = {**read_onnx_metadata(source), **metadata}
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.") as folder:
        prepared, quantized = Path(folder) / "prepared.onnx", Path(folder) / "int8.onnx"
        # onnxruntime's symbolic shape inference guesses at the graph's floor-divided lengths
        # (hierarchical blocks) and bakes the guess in; ONNX's own shape inference does not.
        shape_inference.quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantization.quantize_dynamic(
            str(prepared), str(quantized), weight_type=quantization.QuantType.QInt8, per_channel=True
        )
        proto = onnx.load(str(quantized))
        del proto.metadata_props[:]
        for key, value in sorted(merged.items()):
            proto.metadata_props.add(key=key, value=value)
        with atomic_path(path, suffix=".onnx") as temp:
            onnx.save(proto, str(temp))


__all__ = ["INT8_FORMAT", "load_int8", "quantize", "quantize_onnx", "save_int8"]
