"""FastDecoder computes exactly what the model's own step computes, with a static, growing cache."""

from __future__ import annotations

import pytest
import torch

from aurl.models import MusicTransformerVAEGAN
from aurl.sample import Decoder, FastDecoder, LatentDecoder, TorchDecoder, generate_ids
from aurl.tokens import vocab
from sample.builders import table


def tiny(mode: str, **overrides: object) -> MusicTransformerVAEGAN:
    torch.manual_seed(0)
    return MusicTransformerVAEGAN.from_preset("tiny", mode=mode, table=table(), **overrides).eval()


@pytest.mark.parametrize("mode", ["transformer", "vae", "vae_gan"])
def test_logits_equal_the_models_step(mode: str) -> None:
    """A prompt, then single tokens past the first capacity (256), then a reorder: same logits."""
    model = tiny(mode)
    reference, fast = TorchDecoder(model), FastDecoder(model)
    assert isinstance(fast, Decoder) and isinstance(fast, LatentDecoder)
    assert fast.latent == (mode != "transformer")
    ids = torch.randint(4, vocab.VOCAB_SIZE, (3, 300), generator=torch.Generator().manual_seed(1))
    z = fast.prior([torch.Generator().manual_seed(i) for i in range(3)], 6, 300) if fast.latent else None
    a, ref_cache = reference.step(ids[:, :120], reference.start(3, z))
    b, fast_cache = fast.step(ids[:, :120], fast.start(3, z))
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    for t in range(120, 280):
        a, ref_cache = reference.step(ids[:, t : t + 1], ref_cache)
        b, fast_cache = fast.step(ids[:, t : t + 1], fast_cache)
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    order = torch.tensor([2, 0])
    a, _ = reference.step(ids[order, 280:], reference.reorder(ref_cache, order))
    b, _ = fast.step(ids[order, 280:], fast.reorder(fast_cache, order))
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_half_precision_stays_close() -> None:
    model = tiny("transformer")
    ids = torch.randint(4, vocab.VOCAB_SIZE, (2, 64), generator=torch.Generator().manual_seed(2))
    exact, _ = TorchDecoder(model).step(ids, TorchDecoder(model).start(2))
    for dtype in (torch.float16, torch.bfloat16):
        fast = FastDecoder(model, dtype=dtype)
        approx, _ = fast.step(ids, fast.start(2))
        assert approx.dtype == torch.float32
        assert (approx - exact).abs().max() < 0.05 * exact.abs().max()
        assert (approx.argmax(-1) == exact.argmax(-1)).float().mean() > 0.9


def test_sampling_through_either_decoder_gives_the_same_ids() -> None:
    model = tiny("transformer")
    a = generate_ids(TorchDecoder(model), num=2, max_tokens=80, seed=3)
    b = generate_ids(FastDecoder(model), num=2, max_tokens=80, seed=3)
    assert all(torch.equal(torch.as_tensor(x), torch.as_tensor(y)) for x, y in zip(a, b, strict=True))


def test_windowed_attention_is_left_to_torch_decoder() -> None:
    with pytest.raises(ValueError, match="full attention"):
        FastDecoder(tiny("transformer", attention="sliding"))
