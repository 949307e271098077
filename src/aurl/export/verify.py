"""Check an exported model against the PyTorch float32 model on random and real token sequences.

Inputs: random ids (3 x 37, a random latent in vae modes) and the first test chorale's tokens
(at most 509; its posterior mean as the latent in vae modes). Each check reports the largest
absolute difference of logits (or tensors) and passes within its tolerance:

- onnx: whole prefix and two chunks of the random ids, the chorale as one prefix and token by
  token through the cache; each within 1e-4 of `model.step` on the whole sequence.
- int8 and ONNX int8: logits are compared for the record only (quantisation moves them; ONNX int8
  runs the same four feeds as onnx); the check is the mean cross-entropy on the chorale, at most
  2% above float32's. The int8 safetensors file must also give the in-memory quantised model's
  logits (within 1e-4).
- fp16 / bf16: the file's tensors equal the source's cast to that dtype, exactly, and the loss
  stays within 2%.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from aurl.data.corpus import bach_files
from aurl.export.half import DTYPES
from aurl.export.quantize import load_int8
from aurl.export.result import Check
from aurl.export.session import OnnxStep
from aurl.midi import read_midi
from aurl.models import Latent, MusicTransformerVAEGAN, load_weights
from aurl.tokens import encode

LOGIT_TOLERANCE = 1e-4
LOSS_TOLERANCE_PCT = 2.0
CHORALE_TOKENS = 509  # prime, like 37: lengths that fill no block or window exactly


@dataclass(frozen=True)
class Probe:
    """Token ids (B, T) and, in vae modes, the latent to decode them with."""

    name: str
    ids: Tensor
    z: Latent | None


@dataclass(frozen=True)
class Verdict:
    """The checks of one verification and the chorale losses (nats per token)."""

    checks: list[Check]
    loss_float32: float
    loss_export: float

    @property
    def loss_increase_pct(self) -> float:
        return 100.0 * (self.loss_export / self.loss_float32 - 1.0)

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)


def probes(model: MusicTransformerVAEGAN, seed: int = 0) -> tuple[Probe, Probe]:
    """The random and the chorale inputs."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, model.config.vocab_size, (3, 37), generator=generator)
    ids[:, 0] = model.table.bos_id
    z = Latent.prior(model.config, 3, n_bars=3, n_windows=1, generator=generator) if model.latent else None
    chorale = torch.from_numpy(encode(read_midi(bach_files("test")[0]))[:CHORALE_TOKENS].astype(np.int64))
    chorale = chorale[None]
    with torch.no_grad():
        chorale_z = model.encode(chorale)[0] if model.latent else None
    return Probe("random", ids, z), Probe("chorale", chorale, chorale_z)


def torch_logits(model: torch.nn.Module, probe: Probe) -> Tensor:
    """(B, T, V) logits of the whole probe in one `step`."""
    with torch.no_grad():
        return model.step(probe.ids, None, probe.z)[0].float()  # type: ignore[operator]


def mean_ce(logits: Tensor | np.ndarray, ids: Tensor) -> float:
    """Mean next-token cross-entropy in nats of logits (B, T, V) against ids (B, T)."""
    logits = torch.as_tensor(logits).float()
    return float(F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1)))


def _check(name: str, a: Tensor | np.ndarray, b: Tensor | np.ndarray, tolerance: float | None) -> Check:
    diff = float((torch.as_tensor(a).float() - torch.as_tensor(b).float()).abs().max())
    passed = bool(np.isfinite(diff)) and (tolerance is None or diff <= tolerance)
    return Check(name=name, max_abs_diff=diff, tolerance=tolerance, passed=passed)


def _loss_check(loss_float: float, loss_export: float) -> Check:
    increase = 100.0 * (loss_export / loss_float - 1.0)
    return Check(
        name="chorale loss increase %",
        max_abs_diff=increase,
        tolerance=LOSS_TOLERANCE_PCT,
        passed=bool(np.isfinite(increase)) and increase <= LOSS_TOLERANCE_PCT,
    )


def _z_arrays(z: Latent | None) -> tuple[np.ndarray, ...] | None:
    return None if z is None else tuple(t.numpy().astype(np.float32) for t in (z.piece, z.bar, z.fine))


def _onnx_logits(step: OnnxStep, probe: Probe, splits: list[int]) -> np.ndarray:
    """Logits of the probe fed in the chunks that `splits` (cut positions) make."""
    state = step.start(probe.ids.shape[0], _z_arrays(probe.z))
    ids = probe.ids.numpy()
    out = []
    for lo, hi in zip([0, *splits], [*splits, ids.shape[1]], strict=True):
        logits, state = step.run(ids[:, lo:hi], state)
        out.append(logits)
    return np.concatenate(out, axis=1)


def verify_onnx(model: MusicTransformerVAEGAN, path: Path, quantized: bool) -> Verdict:
    """Run the ONNX file with onnxruntime and compare with `model.step` (module docstring)."""
    step = OnnxStep(path)
    random, chorale = probes(model)
    tolerance = None if quantized else LOGIT_TOLERANCE
    ref_random, ref_chorale = torch_logits(model, random), torch_logits(model, chorale)
    onnx_chorale = _onnx_logits(step, chorale, [])
    every_token = list(range(1, chorale.ids.shape[1]))
    # int8 logits move with the dynamic activation scales, which depend on the chunk: reported only.
    checks = [
        _check("random prefix", _onnx_logits(step, random, []), ref_random, tolerance),
        _check("random in 2 chunks", _onnx_logits(step, random, [17]), ref_random, tolerance),
        _check("chorale prefix", onnx_chorale, ref_chorale, tolerance),
        _check("chorale token by token", _onnx_logits(step, chorale, every_token), ref_chorale, tolerance),
    ]
    loss_float, loss_export = mean_ce(ref_chorale, chorale.ids), mean_ce(onnx_chorale, chorale.ids)
    return Verdict([*checks, _loss_check(loss_float, loss_export)], loss_float, loss_export)


def verify_int8(model: MusicTransformerVAEGAN, quantized: MusicTransformerVAEGAN, path: Path) -> Verdict:
    """Reload the int8 file and compare with the in-memory quantised and the float32 model."""
    loaded = load_int8(path)
    random, chorale = probes(model)
    ref_chorale = torch_logits(model, chorale)
    int8_chorale = torch_logits(loaded, chorale)
    checks = [
        _check("file vs quantised model", int8_chorale, torch_logits(quantized, chorale), LOGIT_TOLERANCE),
        _check("random prefix vs float32", torch_logits(loaded, random), torch_logits(model, random), None),
        _check("chorale prefix vs float32", int8_chorale, ref_chorale, None),
    ]
    loss_float, loss_export = mean_ce(ref_chorale, chorale.ids), mean_ce(int8_chorale, chorale.ids)
    return Verdict([*checks, _loss_check(loss_float, loss_export)], loss_float, loss_export)


def verify_half(model: MusicTransformerVAEGAN, path: Path, fmt: str) -> Verdict:
    """Reload the half-precision file with `load_weights` and compare its tensors and loss."""
    loaded = load_weights(path)
    want = model.state_dict()
    diff = 0.0
    for name, tensor in loaded.state_dict().items():
        expected = want[name].to(DTYPES[fmt]) if want[name].is_floating_point() else want[name]
        diff = max(diff, float((tensor.double() - expected.double()).abs().max()) if tensor.numel() else 0.0)
    _, chorale = probes(model)
    ref_chorale, half_chorale = torch_logits(model, chorale), torch_logits(loaded, chorale)
    checks = [
        Check(name=f"tensors vs float32 cast to {fmt}", max_abs_diff=diff, tolerance=0.0, passed=diff == 0.0),
        _check("chorale prefix vs float32", half_chorale, ref_chorale, None),
    ]
    loss_float, loss_export = mean_ce(ref_chorale, chorale.ids), mean_ce(half_chorale, chorale.ids)
    return Verdict([*checks, _loss_check(loss_float, loss_export)], loss_float, loss_export)
