"""Likelihood of held-out music: bits per token / note / second checked against hand computations."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from aurl.data.corpus import bach_files
from aurl.errors import CheckpointError, UsageError
from aurl.evaluate import evaluate_sets, measure_likelihood, score_likelihood
from aurl.evaluate.likelihood import _state_before, context_windows, load_checkpoint
from aurl.midi import metadata, read_midi
from aurl.models import BeatState, MusicTransformerVAEGAN, TokenTable, save_weights
from aurl.models.positions import beat_features
from aurl.tokens import VOCAB_VERSION, encode, model_tables

N_PIECES = 3


@pytest.fixture(scope="module")
def table() -> TokenTable:
    return TokenTable(**model_tables())


def tiny(table: TokenTable, mode: str = "transformer", seed: int = 0) -> MusicTransformerVAEGAN:
    torch.manual_seed(seed)
    return MusicTransformerVAEGAN.from_preset("tiny", mode=mode, table=table).eval()


@pytest.fixture(scope="module")
def pieces() -> list[Path]:
    """The three shortest test-split chorales (600-900 tokens)."""
    return sorted(bach_files("test"), key=lambda p: p.stat().st_size)[:N_PIECES]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory, table: TokenTable) -> Path:
    """A tiny transformer saved as a run folder's model.safetensors."""
    run = tmp_path_factory.mktemp("run")
    save_weights(tiny(table), run / "model.safetensors", {"vocab_version": VOCAB_VERSION})
    return run / "model.safetensors"


def hand_bits(model: MusicTransformerVAEGAN, paths: list[Path]) -> tuple[float, int]:
    """Total bits and tokens: the cross-entropy of model.forward's logits over every token after BOS."""
    bits, tokens = 0.0, 0
    for path in paths:
        ids = torch.from_numpy(encode(read_midi(path)).astype(np.int64))[None]
        with torch.no_grad():
            logits = model({"ids": ids, "mask": torch.ones_like(ids, dtype=torch.bool)})["logits"]
        log_p = torch.log_softmax(logits[0, :-1].double(), dim=-1)
        bits -= float(log_p.gather(1, ids[0, 1:, None]).sum()) / math.log(2)
        tokens += ids.shape[1] - 1
    return bits, tokens


def test_bits_per_token_is_the_mean_cross_entropy_in_bits(model_file: Path, pieces: list[Path]) -> None:
    result = measure_likelihood(model_file, pieces)
    bits, tokens = hand_bits(load_checkpoint(model_file)[0], pieces)
    assert result.n_tokens == tokens
    assert result.bits == pytest.approx(bits, rel=1e-5)
    assert result.bits_per_token == pytest.approx(bits / tokens, rel=1e-5)
    assert 8.0 < result.bits_per_token < 11.0  # untrained: about log2(774) = 9.6
    assert result.checkpoint == str(model_file) and result.mode == "transformer" and result.latent == "none"
    assert result.kl_bits_per_token is None and result.n_windows == N_PIECES


def test_per_note_and_per_second_use_the_pieces_as_read(model_file: Path, pieces: list[Path]) -> None:
    result = measure_likelihood(model_file, pieces)
    notes = sum(read_midi(p).n_notes for p in pieces)
    seconds = sum(metadata(read_midi(p))["duration_seconds"] for p in pieces)
    assert result.n_notes == notes and result.seconds == pytest.approx(seconds)
    assert result.bits_per_note == pytest.approx(result.bits / notes)
    assert result.bits_per_second == pytest.approx(result.bits / seconds)
    assert sum(f.bits for f in result.files) == pytest.approx(result.bits)
    assert [Path(f.file).name for f in result.files] == [p.name for p in pieces]


@pytest.mark.parametrize("version", ["aurl-events-v0", None])
def test_another_vocabulary_version_is_refused(
    tmp_path: Path, table: TokenTable, version: str | None
) -> None:
    path = tmp_path / "model.safetensors"
    save_weights(tiny(table), path, {"vocab_version": version} if version else {})
    with pytest.raises(CheckpointError, match=f"vocabulary .*{VOCAB_VERSION}") as caught:
        load_checkpoint(path)
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


def test_a_run_folder_resolves_to_its_model(model_file: Path, pieces: list[Path], tmp_path: Path) -> None:
    from_folder = measure_likelihood(model_file.parent, pieces[:1])
    assert from_folder.checkpoint == str(model_file)
    assert from_folder.bits == measure_likelihood(model_file, pieces[:1]).bits
    with pytest.raises(CheckpointError, match="holds no model.safetensors"):
        measure_likelihood(tmp_path, pieces[:1])
    with pytest.raises(UsageError, match="does not exist"):
        measure_likelihood(tmp_path / "nowhere", pieces[:1])
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="cannot read"):
        measure_likelihood(tmp_path / "junk.safetensors", pieces[:1])


@given(n_tokens=st.integers(2, 400), max_context=st.integers(2, 64), data=st.data())
def test_windows_score_every_token_once_with_left_context(n_tokens: int, max_context: int, data) -> None:
    left = data.draw(st.integers(1, max_context - 1))
    windows = context_windows(n_tokens, max_context, left)
    scored = np.concatenate([np.arange(first, end) for _, end, first in windows])
    assert scored.tolist() == list(range(1, n_tokens))
    for start, end, first in windows:
        assert 0 <= start < first <= end <= n_tokens and end - start <= max_context
        assert first - start == (1 if start == 0 else left)  # the tokens each target sees at least


def test_windows_read_exactly_their_tokens(table: TokenTable, pieces: list[Path]) -> None:
    """With beat embeddings off, a window's logits are those of the model on the window alone."""
    model = tiny(table)
    with torch.no_grad():
        model.beat.bar.weight.zero_(), model.beat.beat.weight.zero_()
        model.beat.sub.weight.zero_(), model.beat.phase.weight.zero_()
    score = read_midi(pieces[0])
    ids = torch.from_numpy(encode(score).astype(np.int64))
    max_context, left = 200, 60
    bits = 0.0
    for start, end, first in context_windows(len(ids), max_context, left):
        window = ids[start:end][None]
        with torch.no_grad():
            logits = model({"ids": window, "mask": torch.ones_like(window, dtype=torch.bool)})["logits"]
        nll = F.cross_entropy(logits[0, :-1], window[0, 1:], reduction="none")
        bits += float(nll[first - start - 1 :].sum()) / math.log(2)
    result = score_likelihood(model, [("a", score)], max_context=max_context, left_context=left)
    assert result.n_windows == len(context_windows(len(ids), max_context, left)) > 3
    assert result.bits == pytest.approx(bits, rel=1e-5)
    whole = score_likelihood(model, [("a", score)], max_context=len(ids))
    assert whole.bits != pytest.approx(bits, rel=1e-6)  # windows do cut the context


@pytest.mark.parametrize("mode", ["transformer", "vae"])
def test_windows_keep_beat_positions_and_token_positions(
    table: TokenTable, pieces: list[Path], mode: str
) -> None:
    """With sliding attention (12-token windows every 8 tokens), a window starting on a multiple of 8
    with 16 tokens of left context gives every scored token the very attention it has in the whole
    piece, so windowed bits equal whole-piece bits only if beat states and positions carry over."""
    torch.manual_seed(3)
    model = MusicTransformerVAEGAN.from_preset(
        "tiny", mode=mode, table=table, attention="sliding", sliding_window=12, sliding_overlap=4
    ).eval()
    score = read_midi(pieces[0])
    named = [("first bars", score.select(score.onset < 12 * score.ticks_per_beat))]  # about 200 tokens
    whole = score_likelihood(model, named, max_context=4096)
    windowed = score_likelihood(model, named, max_context=40, left_context=16)  # windows every 24 tokens
    assert windowed.n_windows > 6 and whole.n_windows == 1
    for a, b in zip(windowed.files, whole.files, strict=True):
        assert a.bits == pytest.approx(b.bits, rel=1e-5)
    shifted = score_likelihood(model, named, max_context=40, left_context=12)  # windows every 28: misaligned
    assert shifted.bits != pytest.approx(whole.bits, rel=1e-5)


def test_a_window_resumes_at_the_pieces_beat_state(table: TokenTable, pieces: list[Path]) -> None:
    ids = torch.from_numpy(encode(read_midi(pieces[0])).astype(np.int64))[None]
    tables = {k: v for k, v in table.tensors().items() if k in ("time_advance", "bar_start", "bar_steps")}
    start = BeatState.start(1, table.default_bar_steps)
    whole = beat_features(ids, tables, start)
    for s in (1, 57, 300, ids.shape[1] - 1):
        expected = beat_features(ids[:, :s], tables, start).last()
        found = _state_before(whole, s)
        assert all(
            torch.equal(getattr(found, f), getattr(expected, f))
            for f in ("time", "bar", "bar_time", "bar_len")
        )
    assert int(_state_before(whole, 300).bar[0]) > 0


def test_batches_do_not_change_the_result(table: TokenTable, pieces: list[Path]) -> None:
    model = tiny(table, "vae")
    named = [(p.name, read_midi(p)) for p in pieces]
    one_by_one = score_likelihood(model, named, batch_tokens=1, max_context=300)
    together = score_likelihood(model, named, max_context=300)
    for a, b in zip(one_by_one.files, together.files, strict=True):
        assert a.bits == pytest.approx(b.bits, rel=1e-4) and a.kl_bits == pytest.approx(b.kl_bits, rel=1e-4)


@pytest.mark.parametrize("mode", ["vae", "vae_gan"])
def test_vae_modes_decode_from_the_posterior_mean_or_the_prior(
    table: TokenTable, pieces: list[Path], mode: str
) -> None:
    model = tiny(table, mode)
    named = [(p.name, read_midi(p)) for p in pieces]
    posterior = score_likelihood(model, named)
    assert posterior.latent == "posterior_mean" and posterior.mode == mode
    bits, tokens = hand_bits(model, pieces)  # forward in eval mode decodes from z = mu
    assert posterior.bits == pytest.approx(bits, rel=1e-5)
    assert posterior.kl_bits_per_token is not None and posterior.kl_bits_per_token > 0
    prior = score_likelihood(model, named, latent="prior")
    assert prior.latent == "prior_mean" and prior.kl_bits_per_token is None
    prior_bits = 0.0
    for _, score in named:
        ids = torch.from_numpy(encode(score).astype(np.int64))[None]
        with torch.no_grad():
            logits = model.decode(None, ids)
        prior_bits += float(F.cross_entropy(logits[0, :-1], ids[0, 1:], reduction="sum")) / math.log(2)
    assert prior.bits == pytest.approx(prior_bits, rel=1e-5)
    assert model.training is False


def test_the_model_keeps_its_training_flag(table: TokenTable, pieces: list[Path]) -> None:
    model = tiny(table).train()
    score_likelihood(model, [("a", read_midi(pieces[0]))])
    assert model.training


def test_bad_arguments_are_refused(table: TokenTable, pieces: list[Path]) -> None:
    model = tiny(table)
    named = [("a", read_midi(pieces[0]))]
    with pytest.raises(UsageError, match="left_context"):
        score_likelihood(model, named, max_context=16, left_context=16)
    with pytest.raises(UsageError, match="latent"):
        score_likelihood(model, named, latent="posterior_mode")  # type: ignore[arg-type]
    small = MusicTransformerVAEGAN.from_preset("tiny", vocab_size=100)
    with pytest.raises(CheckpointError, match="774"):
        score_likelihood(small, named)


def test_evaluate_sets_scores_the_reference_set(model_file: Path, pieces: list[Path], tmp_path: Path) -> None:
    generated = tmp_path / "generated"
    generated.mkdir()
    shutil.copyfile(pieces[0], generated / pieces[0].name)
    result = evaluate_sets([generated], pieces, checkpoint=model_file.parent)
    assert result.likelihood is not None and result.likelihood.n_pieces == result.n_reference == N_PIECES
    assert result.likelihood.bits == pytest.approx(measure_likelihood(model_file, pieces).bits, rel=1e-6)
    assert result.reference == ", ".join(str(p) for p in pieces)
    with pytest.raises(CheckpointError):
        evaluate_sets([generated], pieces, checkpoint=tmp_path)


def test_bundled_names_the_shipped_model(
    model_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pieces: list[Path]
) -> None:
    import aurl.models.bundled as bundled

    monkeypatch.setattr(bundled, "bundled_dir", lambda: tmp_path)
    with pytest.raises(CheckpointError, match="bundled model is missing"):
        load_checkpoint("bundled")
    shutil.copyfile(model_file, tmp_path / bundled.BUNDLED_FILE)
    result = measure_likelihood("bundled", pieces[:1])
    assert result.checkpoint == str(tmp_path / bundled.BUNDLED_FILE)
    assert result.bits == pytest.approx(measure_likelihood(model_file, pieces[:1]).bits)
