"""The static single-token step that CUDA graphs capture computes what the eager step computes."""

from __future__ import annotations

import pytest
import torch

from aurl.errors import AurlError
from aurl.models import BeatState, Latent, MusicTransformerVAEGAN
from aurl.sample import Decoder, FastDecoder, TorchDecoder, generate_ids
from aurl.sample.fastpath import FastCache
from aurl.tokens import vocab
from sample.builders import table

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def tiny(mode: str) -> MusicTransformerVAEGAN:
    torch.manual_seed(0)
    return MusicTransformerVAEGAN.from_preset("tiny", mode=mode, table=table()).eval()


def random_ids(batch: int, length: int, seed: int) -> torch.Tensor:
    return torch.randint(4, vocab.VOCAB_SIZE, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("mode", ["transformer", "vae_gan"])
def test_token_step_equals_the_dynamic_step(mode: str) -> None:
    """Static buffers larger than the sequence, written in place, masked past the position: same logits
    and beat state as the step that slices its cache, token after token."""
    fast = FastDecoder(tiny(mode))
    ids = random_ids(2, 90, 4)
    z = fast.prior([torch.Generator().manual_seed(i) for i in range(2)], 4, 90) if fast.latent else None
    _, cache = fast.step(ids[:, :40], fast.start(2, z))
    keys = [torch.zeros(2, fast.heads, 512, fast.head_dim) for _ in fast.blocks]
    values = [torch.zeros_like(k) for k in keys]
    for mine, theirs in zip(keys + values, cache.keys + cache.values, strict=True):
        mine[:, :, : theirs.shape[2]] = theirs
    state = cache.beat
    assert state is not None
    with torch.inference_mode():
        for t in range(40, 90):
            expected, cache = fast.step(ids[:, t : t + 1], cache)
            position = torch.tensor([t])
            got, state = fast.token_step(ids[:, t : t + 1], position, state, keys, values, cache.projected)
            torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
            assert cache.beat is not None
            for name in ("time", "bar", "bar_time", "bar_len"):
                assert torch.equal(getattr(state, name), getattr(cache.beat, name)), name


def test_token_step_ignores_what_lies_past_the_position() -> None:
    """Slots past the position hold stale keys after a reorder or a shorter piece: they must not count."""
    fast = FastDecoder(tiny("transformer"))
    ids = random_ids(1, 30, 5)
    _, cache = fast.step(ids[:, :20], fast.start(1))
    outputs = []
    for stale in (0.0, 1e3):
        keys = [torch.full((1, fast.heads, 64, fast.head_dim), stale) for _ in fast.blocks]
        values = [torch.full_like(k, stale) for k in keys]
        for mine, theirs in zip(keys + values, cache.keys + cache.values, strict=True):
            mine[:, :, :20] = theirs[:, :, :20]
        assert cache.beat is not None
        with torch.inference_mode():
            logits, _ = fast.token_step(ids[:, 20:21], torch.tensor([20]), cache.beat, keys, values, None)
        outputs.append(logits)
    torch.testing.assert_close(outputs[0], outputs[1], atol=1e-5, rtol=1e-5)


def step_both(reference: Decoder, candidate: FastDecoder, ids: torch.Tensor, z: Latent | None,
              prompt: int, reorder_at: int, order: torch.Tensor) -> FastCache:  # fmt: skip
    """Feed both decoders a prompt, then single tokens, with a reorder of the rows on the way: the
    candidate's logits must equal the reference's at every step. Returns the candidate's last cache."""
    _, ref_cache = reference.step(ids[:, :prompt], reference.start(ids.shape[0], z))
    _, cache = candidate.step(ids[:, :prompt], candidate.start(ids.shape[0], z))
    for t in range(prompt, ids.shape[1]):
        if t == reorder_at:
            ids, ref_cache, cache = (
                ids[order],
                reference.reorder(ref_cache, order),
                candidate.reorder(cache, order),
            )
        a, ref_cache = reference.step(ids[:, t : t + 1], ref_cache)
        b, cache = candidate.step(ids[:, t : t + 1], cache)
        torch.testing.assert_close(b, a, atol=1e-4, rtol=1e-4)
    return cache


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("mode", ["transformer", "vae"])
def test_graph_replay_equals_the_models_own_step(mode: str) -> None:
    """On a GPU every single-token step replays a graph: through the first growth of the cache (256)
    and a reorder, its logits stay those of the model's eager step."""
    model = tiny(mode)
    reference, fast = TorchDecoder(model, "cuda"), FastDecoder(model, "cuda")
    z = fast.prior([torch.Generator().manual_seed(i) for i in range(3)], 6, 290) if fast.latent else None
    cache = step_both(reference, fast, random_ids(3, 290, 6).cuda(), z, 100, 280, torch.tensor([2, 0]))
    assert isinstance(cache.beat, BeatState) and cache.length == 290
    assert fast._graph is not None and fast._graph.key[:2] == (2, 512)


@pytest.mark.gpu
@cuda
def test_sampling_on_the_gpu_is_reproducible_and_matches_the_cpu() -> None:
    model = tiny("transformer")
    gpu = FastDecoder(model, "cuda")
    first = generate_ids(gpu, num=2, max_tokens=300, seed=7)
    again = generate_ids(gpu, num=2, max_tokens=300, seed=7)
    cpu = generate_ids(FastDecoder(tiny("transformer")), num=2, max_tokens=300, seed=7)
    for a, b, c in zip(first, again, cpu, strict=True):
        assert a.tolist() == b.tolist() == c.tolist()


@pytest.mark.slow
def test_compiled_steps_compute_the_same_logits_on_a_cpu() -> None:
    """compile=True runs single-token steps through torch.compile (about 40 s of compilation here):
    across a capacity growth and a smaller batch, each a new shape, the logits stay the eager ones."""
    from torch._dynamo.utils import counters

    model = tiny("vae")
    eager, compiled = FastDecoder(model), FastDecoder(model, compile=True)
    z = eager.prior([torch.Generator().manual_seed(i) for i in range(2)], 6, 280)
    counters.clear()
    cache = step_both(eager, compiled, random_ids(2, 280, 8), z, 200, 270, torch.tensor([1]))
    assert cache.length == 280 and cache.keys[0].shape[:3] == (1, compiled.heads, 512)
    # One compilation per new kind of shape (capacity, batch), not one per step: the step's inputs
    # keep their strides and their inference-tensor kind from token to token.
    assert counters["stats"]["unique_graphs"] <= 3


def test_a_failed_compilation_is_one_line() -> None:
    import torch._inductor.config

    # No C++ compiler, and no kernel cached on disk to stand in for one; torch's own patch undoes it.
    with torch._inductor.config.patch({"cpp.cxx": ("/nonexistent/g++",), "fx_graph_cache": False}):
        torch._dynamo.reset()  # nor anything compiled earlier in this process
        fast = FastDecoder(tiny("transformer"), compile=True)
        _, cache = fast.step(random_ids(1, 4, 9), fast.start(1))
        with pytest.raises(AurlError, match=r"^--compile: torch.compile failed .*C\+\+ compiler") as caught:
            fast.step(random_ids(1, 1, 10), cache)
    torch._dynamo.reset()
    assert "\n" not in str(caught.value)


@pytest.mark.gpu
@cuda
def test_a_compiled_graph_computes_the_same_logits() -> None:
    """torch.compile fuses the captured step's kernels; across a capacity growth and a smaller batch
    (each a new graph and shape) its logits stay those of the eager graph."""
    model = tiny("vae")
    eager, compiled = FastDecoder(model, "cuda"), FastDecoder(model, "cuda", compile=True)
    z = eager.prior([torch.Generator().manual_seed(i) for i in range(2)], 6, 280)
    cache = step_both(eager, compiled, random_ids(2, 280, 8).cuda(), z, 200, 270, torch.tensor([1]))
    assert cache.keys[0].shape[0] == 1
