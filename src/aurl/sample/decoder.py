"""The decoder protocol that generation runs on, and `TorchDecoder` over the model's KV-cached `step`.

Generation (generate.py, beam.py) knows a model only through `Decoder`: start a batch, feed it new
tokens, get logits back, and reorder the batch's rows (beam search, dropping finished rows). An
exported model (ONNX, int8) implements the same three methods, so it samples through the same code.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from aurl.config import ModelConfig
from aurl.models import DecodeCache, Latent, MusicTransformerVAEGAN


@runtime_checkable
class Decoder(Protocol):
    """An autoregressive model over token ids, decoded incrementally with a cache of past tokens.

    Attributes:
        vocab_size: V, the number of token ids the logits cover.
    """

    vocab_size: int

    def start(self, batch: int, z: Latent | None = None) -> Any:
        """The cache of `batch` empty rows; `z` (one row per batch row) conditions a latent model."""
        ...

    def step(self, ids: Tensor, cache: Any) -> tuple[Tensor, Any]:
        """Logits (B, T_new, V) for new ids (B, T_new) following the cached tokens, and the new cache.

        A cache may be updated in place: step from each cache once (reorder makes a new one).
        """
        ...

    def reorder(self, cache: Any, index: Tensor) -> Any:
        """The cache whose row i is row `index[i]` of `cache`; index (B',) int64 (may repeat or drop rows)."""
        ...


@runtime_checkable
class LatentDecoder(Decoder, Protocol):
    """A decoder whose model has a latent space (vae and vae_gan modes)."""

    latent: bool

    def encode(self, ids: Tensor) -> Latent:
        """Posterior mean of the latent of ids (1, T)."""
        ...

    def prior(self, generators: list[torch.Generator], n_bars: int, n_tokens: int) -> Latent:
        """One draw from N(0, I) per generator, covering `n_bars` bars and `n_tokens` tokens."""
        ...


@dataclass(frozen=True)
class TorchCache:
    """TorchDecoder's cache: the model's DecodeCache (None before the first step) and the latent."""

    inner: DecodeCache | None
    z: Latent | None


class TorchDecoder:
    """`Decoder` over `MusicTransformerVAEGAN.step`, in eval mode and without autograd.

    Args:
        model: the model; put in eval mode here.
        device: where the model runs (default: where its parameters are). Logits come back there.
    """

    def __init__(self, model: MusicTransformerVAEGAN, device: torch.device | str | None = None) -> None:
        self.model = model.eval()
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.model.to(self.device)
        self.vocab_size = model.config.vocab_size
        self.latent = model.config.mode != "transformer"

    def start(self, batch: int, z: Latent | None = None) -> TorchCache:
        if z is not None and z.piece.shape[0] != batch:
            raise ValueError(f"z has {z.piece.shape[0]} rows for a batch of {batch}")
        return TorchCache(None, z.map(lambda t: t.to(self.device)) if z is not None else None)

    def step(self, ids: Tensor, cache: TorchCache) -> tuple[Tensor, TorchCache]:
        with torch.inference_mode():
            logits, inner = self.model.step(ids.to(self.device), cache.inner, cache.z)
        return logits, TorchCache(inner, cache.z)

    def reorder(self, cache: TorchCache, index: Tensor) -> TorchCache:
        with torch.inference_mode():
            return _take(cache, index.to(self.device))

    def encode(self, ids: Tensor) -> Latent:
        with torch.inference_mode():
            mu, _, _ = self.model.encode(ids.to(self.device))
        return mu

    def prior(self, generators: list[torch.Generator], n_bars: int, n_tokens: int) -> Latent:
        return draw_prior(self.model.config, generators, n_bars, n_tokens, self.device)


def draw_prior(
    config: ModelConfig, generators: list[torch.Generator], n_bars: int, n_tokens: int,
    device: torch.device | str | None = None,
) -> Latent:  # fmt: skip
    """One N(0, I) latent row per generator (drawn on the CPU, so a seed gives the same z anywhere),
    with `n_bars` bars and enough fine windows for `n_tokens` tokens."""
    n_windows = -(-n_tokens // config.fine_window)
    rows = [Latent.prior(config, 1, n_bars, n_windows, g, device) for g in generators]
    return Latent(*(torch.cat([getattr(r, f.name) for r in rows]) for f in dataclasses.fields(Latent)))


def _take(value: Any, index: Tensor) -> Any:  # also FastDecoder's reorder
    """`value` with every tensor inside it (dataclasses, lists and tuples, recursively) indexed on dim 0."""
    if isinstance(value, Tensor):
        return value.index_select(0, index)
    if isinstance(value, (list, tuple)):
        return type(value)(_take(item, index) for item in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {f.name: _take(getattr(value, f.name), index) for f in dataclasses.fields(value)}
        return dataclasses.replace(value, **changes)
    return value  # ints (positions) and None are shared by every row
