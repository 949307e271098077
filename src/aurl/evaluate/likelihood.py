"""Likelihood of held-out music under a trained model: bits per token, per note and per second.

Each piece is encoded with `aurl.tokens.encode` (BOS, header, music, EOS) and every token after BOS
is scored by teacher forcing with the model's logits: bits(piece) = -sum_t log2 p(x_t | x_<t) for
t = 1 .. T-1. Over a set, bits_per_token = sum bits / sum (T - 1), bits_per_note = sum bits / sum
notes (the pieces' notes as read, before quantisation) and bits_per_second = sum bits / sum seconds
(each piece's end through its tempo map). Notes and seconds do not depend on the vocabulary, so the
last two compare models whose vocabularies differ.

Long pieces: a piece longer than `max_context` tokens is scored in windows of max_context tokens
that start every max_context - left_context tokens; the first window scores its own tokens, each
later one only the tokens after its first left_context, so every token is scored once and sees at
least left_context tokens before it. A window keeps the piece's beat positions (time, bar, bar
length at its start) and absolute token positions, as if the model read the whole piece with its
attention limited to the window.

vae and vae_gan: the decoder is conditioned on the posterior mean of the whole piece (the encoder
reads all of it) by default, `latent="prior"` conditions on the prior mean instead. The posterior
mean has seen the piece, so its bits are a reconstruction, not a likelihood; `kl_bits_per_token`
(KL(q(z|x) || N(0, I)) per token) added to them gives the negative ELBO at the posterior mean,
the VAE's counterpart of a transformer's bits per token.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from aurl.data.preprocess import find_midi_files
from aurl.errors import AurlError, CheckpointError, DataError, UsageError
from aurl.evaluate.result import FileLikelihood, LikelihoodResult, RejectedFile
from aurl.midi import read_midi
from aurl.midi.score import Score
from aurl.midi.validate import ticks_to_seconds
from aurl.models import BeatState, DecodeCache, Latent, MusicTransformerVAEGAN, load_weights, read_metadata
from aurl.models.bundled import resolve_checkpoint
from aurl.models.positions import BeatFeatures, beat_features
from aurl.models.vae import kl_levels
from aurl.tokens import VOCAB_SIZE, VOCAB_VERSION, check_vocab_version, encode

DEFAULT_MAX_CONTEXT: Final = 2048
DEFAULT_BATCH_TOKENS: Final = 16384  # tokens per forward pass: bounds memory, keeps batches full
LN2: Final = math.log(2.0)

LatentChoice = Literal["posterior", "prior"]
ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class Window:
    """Tokens start .. end - 1 of one piece, scoring the targets first_target .. end - 1."""

    piece: int
    start: int
    end: int
    first_target: int


@dataclass(frozen=True)
class _Piece:
    file: str
    ids: Tensor  # (T,) int64
    n_notes: int
    seconds: float


def context_windows(n_tokens: int, max_context: int, left_context: int) -> list[tuple[int, int, int]]:
    """(start, end, first_target) of the windows that score tokens 1 .. n_tokens - 1 once each.

    Args:
        n_tokens: T, the piece's length with BOS and EOS.
        max_context: most tokens in a window (>= 2).
        left_context: tokens at the start of every window but the first that are context only
            (1 <= left_context < max_context): every scored token sees at least this many before it.

    Raises:
        UsageError: max_context or left_context out of range.
    """
    if max_context < 2 or not 1 <= left_context < max_context:
        raise UsageError(
            f"max_context {max_context} and left_context {left_context} do not fit; "
            "need max_context >= 2 and 1 <= left_context < max_context"
        )
    if n_tokens <= max_context:
        return [(0, n_tokens, 1)]
    stride = max_context - left_context
    found = [(0, max_context, 1)]
    while found[-1][1] < n_tokens:
        start = found[-1][0] + stride
        found.append((start, min(start + max_context, n_tokens), start + left_context))
    return found


def load_checkpoint(checkpoint: str | os.PathLike[str]) -> tuple[MusicTransformerVAEGAN, Path]:
    """Load a model for scoring and the file it came from; refuse another vocabulary version.

    Raises:
        UsageError: the path does not exist.
        CheckpointError: no model file, a broken one, or one made for another vocabulary version.
    """
    path = resolve_checkpoint(checkpoint)
    check_vocab_version(read_metadata(path).get("vocab_version"), path)
    return load_weights(path), path


def _piece(file: str, score: Score) -> _Piece:
    ids = torch.from_numpy(encode(score).astype(np.int64))
    seconds = float(ticks_to_seconds(np.array([score.end_ticks]), score.tempos, score.ticks_per_beat)[0])
    return _Piece(file, ids, score.n_notes, seconds)


def _chunks(order: list[int], lengths: list[int], batch_tokens: int) -> Iterator[list[int]]:
    """Consecutive runs of `order` (longest first) whose padded size stays within batch_tokens."""
    chunk: list[int] = []
    for i in order:
        if chunk and (len(chunk) + 1) * lengths[chunk[0]] > batch_tokens:
            yield chunk
            chunk = []
        chunk.append(i)
    if chunk:
        yield chunk


def _padded(rows: list[Tensor], pad_id: int) -> tuple[Tensor, Tensor]:
    """(B, T) ids right-padded with pad_id, and the (B, T) bool mask of real tokens."""
    ids = torch.full((len(rows), max(len(r) for r in rows)), pad_id, dtype=torch.long)
    mask = torch.zeros(ids.shape, dtype=torch.bool)
    for i, row in enumerate(rows):
        ids[i, : len(row)], mask[i, : len(row)] = row, True
    return ids, mask


def _latent_row(latent: Latent, r: int) -> Latent:
    return Latent(
        *(t[r : r + 1] for t in (latent.piece, latent.bar, latent.fine, latent.bar_mask, latent.fine_mask))
    )


def _pad_rows(tensors: list[Tensor]) -> Tensor:
    """Concatenate (1, N_i, ...) tensors along dim 0, zero-padding dim 1 to the largest N_i."""
    out = tensors[0].new_zeros((len(tensors), max(t.shape[1] for t in tensors), *tensors[0].shape[2:]))
    for i, t in enumerate(tensors):
        out[i, : t.shape[1]] = t[0]
    return out


def _stack_latents(rows: list[Latent]) -> Latent:
    """One batch from single-row latents; bars and windows padded with zeros, which the decoder
    reads as the prior mean (as it does past a latent's last bar or window)."""
    return Latent(
        torch.cat([z.piece for z in rows]),
        _pad_rows([z.bar for z in rows]),
        _pad_rows([z.fine for z in rows]),
        _pad_rows([z.bar_mask for z in rows]),
        _pad_rows([z.fine_mask for z in rows]),
    )


def _posteriors(
    model: MusicTransformerVAEGAN, pieces: list[_Piece], batch_tokens: int
) -> tuple[list[Latent], list[float]]:
    """Posterior mean of every piece (the encoder reads all of it) and its KL to the prior, in nats."""
    lengths = [len(p.ids) for p in pieces]
    means: list[Latent | None] = [None] * len(pieces)
    kls = [0.0] * len(pieces)
    for chunk in _chunks(sorted(range(len(pieces)), key=lambda i: -lengths[i]), lengths, batch_tokens):
        ids, mask = _padded([pieces[i].ids for i in chunk], model.table.pad_id)
        mu, logvar, _ = model.encode(ids, mask)
        levels = kl_levels(mu, logvar).values()
        kl = torch.stack([(k * m[..., None]).sum(dim=(1, 2)) for k, m in levels]).sum(dim=0)  # (B,) nats
        for r, i in enumerate(chunk):
            means[i], kls[i] = _latent_row(mu, r), float(kl[r])
    return [m for m in means if m is not None], kls


def _state_before(feats: BeatFeatures, start: int) -> BeatState:
    """The (1,) beat state after tokens 0 .. start - 1 of a piece whose features are `feats`."""
    last = start - 1
    return BeatState(
        feats.time[:, last],
        feats.bar[:, last],
        feats.time[:, last] - feats.pos_in_bar[:, last],
        feats.bar_len[:, last],
    )


def _score_windows(
    model: MusicTransformerVAEGAN,
    pieces: list[_Piece],
    windows: list[Window],
    feats: list[BeatFeatures],
    latents: list[Latent] | None,
) -> Tensor:
    """(B,) bits of each window's scored tokens; every window starts at the same token index."""
    start = windows[0].start
    ids, _ = _padded([pieces[w.piece].ids[w.start : w.end] for w in windows], model.table.pad_id)
    z = _stack_latents([latents[w.piece] for w in windows]) if latents is not None else None
    cache = None
    if start > 0:
        states = [_state_before(feats[w.piece], start) for w in windows]
        beat = BeatState(
            *(torch.cat([getattr(s, f) for s in states]) for f in ("time", "bar", "bar_time", "bar_len"))
        )
        # No layer caches: a fresh pass over the window, resumed at the piece's beat state and position.
        cache = DecodeCache(layers=None, beat=beat, pos=start, z=z)  # type: ignore[arg-type]
    logits, _ = model.step(ids, cache, z=z)  # (B, L, V)
    nll = F.cross_entropy(logits[:, :-1].transpose(1, 2).float(), ids[:, 1:], reduction="none")  # (B, L-1)
    target = torch.arange(1, ids.shape[1]) + start  # absolute index of each predicted token
    first = torch.tensor([w.first_target for w in windows])[:, None]
    end = torch.tensor([w.end for w in windows])[:, None]
    scored = (target[None] >= first) & (target[None] < end)
    return (nll * scored).sum(dim=1) / LN2


def _check_vocabulary(model: MusicTransformerVAEGAN) -> None:
    if model.config.vocab_size != VOCAB_SIZE:
        raise CheckpointError(
            f"model has {model.config.vocab_size} tokens but aurl's vocabulary has {VOCAB_SIZE}; "
            "use a model trained with this version of aurl"
        )


def _windows(pieces: list[_Piece], max_context: int, left_context: int) -> list[Window]:
    """Every piece's windows, grouped by start (a batch shares one position), longest first."""
    found = [
        Window(i, *w)
        for i, p in enumerate(pieces)
        for w in context_windows(len(p.ids), max_context, left_context)
    ]
    return sorted(found, key=lambda w: (w.start, -(w.end - w.start)))


def _batches(windows: list[Window], batch_tokens: int) -> Iterator[list[Window]]:
    lengths = [w.end - w.start for w in windows]
    group: list[int] = []
    for i, window in enumerate(windows):
        if group and windows[group[0]].start != window.start:
            yield from ([windows[j] for j in c] for c in _chunks(group, lengths, batch_tokens))
            group = []
        group.append(i)
    if group:
        yield from ([windows[j] for j in c] for c in _chunks(group, lengths, batch_tokens))


def _score_all(
    model: MusicTransformerVAEGAN,
    pieces: list[_Piece],
    max_context: int,
    left_context: int,
    latent: LatentChoice,
    batch_tokens: int,
    on_progress: ProgressCallback | None,
) -> tuple[Tensor, list[float] | None]:
    """(N,) float64 bits of every piece and, with the posterior, each piece's KL in nats."""
    latents, kls = (
        _posteriors(model, pieces, batch_tokens) if model.latent and latent == "posterior" else (None, None)
    )
    table = model.table
    tables = {
        "time_advance": torch.as_tensor(np.asarray(table.time_advance, np.int64)),
        "bar_start": torch.as_tensor(np.asarray(table.bar_start, bool)),
        "bar_steps": torch.as_tensor(np.asarray(table.bar_steps, np.int64)),
    }
    start = BeatState.start(1, table.default_bar_steps)
    feats = [beat_features(p.ids[None], tables, start) for p in pieces]
    windows = _windows(pieces, max_context, left_context)
    bits = torch.zeros(len(pieces), dtype=torch.float64)
    done = 0
    for batch in _batches(windows, batch_tokens):
        found = _score_windows(model, pieces, batch, feats, latents)
        bits.index_add_(0, torch.tensor([w.piece for w in batch]), found.double())
        done += len(batch)
        if on_progress is not None:
            on_progress(done, len(windows))
    return bits, kls


def _per(total: float, count: float) -> float | None:
    return total / count if count > 0 else None


def score_likelihood(
    model: MusicTransformerVAEGAN,
    pieces: Sequence[tuple[str, Score]],
    *,
    max_context: int = DEFAULT_MAX_CONTEXT,
    left_context: int | None = None,
    latent: LatentChoice = "posterior",
    batch_tokens: int = DEFAULT_BATCH_TOKENS,
    on_progress: ProgressCallback | None = None,
) -> LikelihoodResult:
    """The model's bits per token, per note and per second on `pieces` (see the module docstring).

    Args:
        model: a model over aurl's vocabulary; put in eval mode for the call, then restored.
        pieces: (name, score) pairs; a score that cannot be turned into tokens is listed in `skipped`.
        max_context: most tokens the model reads at once (default 2048).
        left_context: context-only tokens of each later window (default max_context // 2).
        latent: vae modes: "posterior" (each piece's posterior mean) or "prior" (the prior mean).
        batch_tokens: padded tokens per forward pass.
        on_progress: called with (windows scored, windows in all).
    Raises:
        CheckpointError: the model's vocabulary size is not aurl's.
        UsageError: max_context, left_context or latent out of range.
    """
    left = max_context // 2 if left_context is None else left_context
    _check_vocabulary(model)
    context_windows(2, max_context, left)  # checks the two before any work
    if latent not in ("posterior", "prior"):
        raise UsageError(f"latent {latent!r} is not 'posterior' or 'prior'")
    prepared, skipped = [], []
    for file, score in pieces:
        try:
            prepared.append(_piece(file, score))
        except AurlError as error:
            skipped.append(RejectedFile(file=file, reason=str(error)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            bits, kls = _score_all(
                model, prepared, max_context, left, latent, max(batch_tokens, 1), on_progress
            )
    finally:
        model.train(was_training)
    files = [
        FileLikelihood(
            file=p.file,
            n_tokens=len(p.ids) - 1,
            n_notes=p.n_notes,
            seconds=p.seconds,
            bits=float(bits[i]),
            kl_bits=kls[i] / LN2 if kls is not None else None,
        )
        for i, p in enumerate(prepared)
    ]
    total = float(bits.sum())
    n_tokens = sum(f.n_tokens for f in files)
    return LikelihoodResult(
        checkpoint=None,
        mode=model.config.mode,
        latent="none" if not model.latent else "posterior_mean" if latent == "posterior" else "prior_mean",
        vocab_version=VOCAB_VERSION,
        max_context=max_context,
        left_context=left,
        n_pieces=len(files),
        n_windows=len(_windows(prepared, max_context, left)),
        n_tokens=n_tokens,
        n_notes=sum(f.n_notes for f in files),
        seconds=sum(f.seconds for f in files),
        bits=total,
        bits_per_token=_per(total, n_tokens),
        bits_per_note=_per(total, sum(f.n_notes for f in files)),
        bits_per_second=_per(total, sum(f.seconds for f in files)),
        kl_bits_per_token=_per(sum(kls) / LN2, n_tokens) if kls is not None else None,
        files=files,
        skipped=skipped,
    )


def measure_likelihood(
    checkpoint: str | os.PathLike[str],
    inputs: Sequence[str | Path],
    *,
    max_context: int = DEFAULT_MAX_CONTEXT,
    left_context: int | None = None,
    latent: LatentChoice = "posterior",
    batch_tokens: int = DEFAULT_BATCH_TOKENS,
    on_progress: ProgressCallback | None = None,
) -> LikelihoodResult:
    """Load `checkpoint` ("bundled", a run folder or a model file) and score the MIDI `inputs`.

    Files or folders (walked recursively); unreadable files are listed in `skipped`. The other
    arguments are those of `score_likelihood`.

    Raises:
        UsageError: an input or the checkpoint does not exist.
        CheckpointError: the model file is missing, broken or made for another vocabulary version.
        DataError: no input could be read.
    """
    model, path = load_checkpoint(checkpoint)
    pieces, unreadable = [], []
    for file in find_midi_files(inputs):
        try:
            pieces.append((str(file), read_midi(file)))
        except AurlError as error:
            unreadable.append(RejectedFile(file=str(file), reason=str(error)))
    if not pieces:
        raise DataError(f"no readable MIDI file among {len(unreadable)} found; pass MIDI files or folders")
    found = score_likelihood(
        model, pieces, max_context=max_context, left_context=left_context, latent=latent,
        batch_tokens=batch_tokens, on_progress=on_progress,
    )  # fmt: skip
    return found.model_copy(update={"checkpoint": str(path), "skipped": unreadable + found.skipped})
