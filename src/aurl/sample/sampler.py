"""`sample`: what `aurl sample` calls. Settings and inputs in, MIDI (or MusicXML) files and a result out.

Four tasks share one path: sample (from BOS; z from the prior in vae modes), continue (a primer),
reconstruct (a piece's own latent) and interpolate (between two pieces' latents). Each builds the
processors, constraints and stopping rule first, so that a bad setting fails before the model loads.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import secrets
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from aurl.config import AurlSettings, SampleConfig
from aurl.config.sample import RECOMMENDED_KEY, with_recommended
from aurl.errors import CheckpointError, ConfigError, UsageError
from aurl.midi import read_midi
from aurl.midi.validate import ticks_to_seconds
from aurl.models import Latent, read_metadata
from aurl.models.bundled import resolve_checkpoint
from aurl.sample.beam import beam_search
from aurl.sample.checkpoint import LoadedModel, file_sha256, load_checkpoint
from aurl.sample.constraints import ConstraintSet, build_constraints
from aurl.sample.decoder import Decoder, LatentDecoder
from aurl.sample.generate import Generated, generate, prompt_of, row_generators
from aurl.sample.latent import extend, interpolate
from aurl.sample.output import plan_outputs, write_piece
from aurl.sample.processors import build_processors
from aurl.sample.result import SampledPiece, SampleResult
from aurl.sample.stopping import StopRule
from aurl.tokens import count_invalid, decode, encode, vocab
from aurl.version import __version__

log = logging.getLogger(__name__)


ProgressCallback = Callable[[int, int], None]


@dataclasses.dataclass(frozen=True)
class _Job:
    """Everything one call generates with."""

    config: SampleConfig
    constraints: ConstraintSet
    stop: StopRule
    seed: int
    count: int


def sample(
    settings: AurlSettings,
    *,
    checkpoint: str | Path | None = None,
    out: str | Path | None = None,
    num: int | None = None,
    primer: Path | None = None,
    interpolate_between: tuple[Path, Path] | None = None,
    reconstruct: Path | None = None,
    decoder: Decoder | None = None,
    on_progress: ProgressCallback | None = None,
) -> SampleResult:
    """Generate pieces and write them; see the module docstring.

    Args:
        settings: resolved settings; `settings.sample` drives everything.
        checkpoint: overrides `sample.checkpoint` ('bundled', a model file or a run folder).
        out: a file for one piece, else a folder (default `song.mid` or `songs/`).
        num: overrides `sample.num`.
        primer: a MIDI file to continue.
        interpolate_between: two MIDI files; `sample.steps` pieces from the first to the second.
        reconstruct: a MIDI file to encode and decode again.
        decoder: an already loaded model (e.g. an ONNX export) to use instead of loading `checkpoint`.
        on_progress: called as on_progress(step, total) while tokens are generated.

    Raises:
        ConfigError: an impossible constraint or setting (before the model loads).
        UsageError: tasks that exclude each other, an input file that does not exist, or a latent
            task on a transformer model.
        CheckpointError, MidiError: a model or input file that cannot be used.
    """
    started = time.perf_counter()
    config = settings.sample
    if checkpoint is not None:
        config = config.model_copy(update={"checkpoint": str(checkpoint)})
    if num is not None:
        config = config.model_copy(update={"num": num})
    task = _task(primer, interpolate_between, reconstruct)
    _require_inputs(primer, interpolate_between, reconstruct)
    count = config.steps if task == "interpolate" else config.num
    _job(config, count)  # the user's settings fail here, before any file is opened
    config = _with_model_recommended(config, decoder)
    job = _job(config, count)
    paths = plan_outputs(out, count, config.format, "step" if task == "interpolate" else "song")
    model = _load(config, decoder)
    if task in ("reconstruct", "interpolate") and not _is_latent(model.decoder):
        flag = "--reconstruct" if task == "reconstruct" else "--interpolate"
        raise UsageError(f"{flag} needs a vae or vae_gan model; '{model.path}' is a {model.mode} model")
    inputs = [p for p in (primer, reconstruct, *(interpolate_between or ())) if p is not None]
    pedal = settings.midi.sustain_pedal
    encoded = [encode(read_midi(p, sustain_pedal=pedal)).astype(np.int64) for p in inputs]
    log.info("%s: %d piece(s) from %s (%s model), seed %d", task, count, model.path, model.mode, job.seed)
    began = time.perf_counter()
    pieces = _run(task, model.decoder, job, encoded, on_progress)
    generation_s = time.perf_counter() - began
    meta = _metadata(job, model, task, inputs)
    written = [
        _write(piece, path, config.format, {**meta, "piece": i})
        for i, (piece, path) in enumerate(zip(pieces, paths, strict=True))
    ]
    new_tokens = sum(p.new_tokens for p in pieces)
    return SampleResult(
        pieces=written,
        checkpoint=str(model.path),
        checkpoint_sha256=model.sha256,
        mode=model.mode,
        task=task,
        seed=job.seed,
        aurl_version=__version__,
        constraints=job.constraints.describe(),
        settings=meta["settings"],
        tokens_per_second=new_tokens / max(generation_s, 1e-9),
        seconds=time.perf_counter() - started,
    )


def _require_inputs(primer: Path | None, pair: tuple[Path, Path] | None, reconstruct: Path | None) -> None:
    """A missing input file is a usage error (exit 2), like a wrong flag, not a file that fails to read."""
    named = [
        ("--primer", primer),
        ("--reconstruct", reconstruct),
        *(("--interpolate", p) for p in pair or ()),
    ]
    for flag, path in named:
        if path is not None and not Path(path).exists():
            raise UsageError(f"{flag} '{path}' does not exist; pass a MIDI file")


def _task(primer: Path | None, pair: tuple[Path, Path] | None, reconstruct: Path | None) -> str:
    given = [name for name, value in (("--primer", primer), ("--interpolate", pair),
                                      ("--reconstruct", reconstruct)) if value is not None]  # fmt: skip
    if len(given) > 1:
        raise UsageError(f"{' and '.join(given)} exclude each other; give one of them")
    if pair is not None:
        return "interpolate"
    if reconstruct is not None:
        return "reconstruct"
    return "continue" if primer is not None else "sample"


def _job(config: SampleConfig, count: int) -> _Job:
    build_processors(config)  # fails early on a bad strategy setting
    if config.beam > 1 and config.num > config.beam:
        raise UsageError(
            f"--num {config.num} exceeds --beam {config.beam}: beam search returns at most one piece per beam"
        )
    seed = config.seed if config.seed is not None else secrets.randbelow(2**31)
    return _Job(config, build_constraints(config), StopRule.from_config(config), seed, count)


def _with_model_recommended(config: SampleConfig, decoder: Decoder | None) -> SampleConfig:
    """The settings with the model file's recommended ones where the user set nothing.

    An exported ONNX decoder brings its file's metadata (reading it needs onnx, which only the
    export layer may import); every other model is a safetensors file with the keys in its header.

    Raises:
        CheckpointError: the file's recommended settings are not valid settings.
    """
    path = resolve_checkpoint(config.checkpoint)
    metadata = getattr(decoder, "metadata", None)
    if metadata is None:
        metadata = read_metadata(path) if path.suffix.lower() == ".safetensors" else {}
    raw = metadata.get(RECOMMENDED_KEY)
    if not raw:
        return config
    try:
        merged = with_recommended(config, json.loads(raw))
    except ValueError as error:  # json.JSONDecodeError and pydantic's ValidationError are ValueErrors
        first = str(error).splitlines()[0]
        raise CheckpointError(f"model file '{path}' recommends invalid sample settings: {first}") from None
    log.debug("settings recommended by %s: %s", path.name, raw)
    return merged


def _load(config: SampleConfig, decoder: Decoder | None) -> LoadedModel:
    if decoder is None:
        return load_checkpoint(config.checkpoint, config.device, config.precision, config.compile)
    if config.compile:
        raise ConfigError("--compile applies to aurl's own model files; an exported model is run as it is")
    path = resolve_checkpoint(config.checkpoint)
    model_config = getattr(decoder, "config", None)  # exported decoders carry their ModelConfig
    mode = getattr(model_config, "mode", None) or ("vae" if _is_latent(decoder) else "transformer")
    return LoadedModel(decoder, path, file_sha256(path), str(mode))


def _is_latent(decoder: Decoder) -> bool:
    return isinstance(decoder, LatentDecoder) and bool(decoder.latent)


def _run(
    task: str, decoder: Decoder, job: _Job, encoded: list[np.ndarray], on_progress: ProgressCallback | None
) -> list[Generated]:
    """Generate the job's pieces for the task."""
    config, latent = job.config, _is_latent(decoder)
    primer = encoded[0] if task == "continue" else None
    stop, z, shared = job.stop, None, False
    if task in ("reconstruct", "interpolate"):
        assert isinstance(decoder, LatentDecoder)
        codes = [decoder.encode(torch.as_tensor(ids)[None]) for ids in encoded]
        zs = [codes[0]] * job.count if task == "reconstruct" else interpolate(codes[0], codes[1], job.count)
        z, shared = _stack(zs), task == "interpolate"
        if stop == StopRule():
            stop = StopRule(bars=max(1, *(_bars(ids) for ids in encoded)))  # as long as the inputs
    elif latent:
        assert isinstance(decoder, LatentDecoder)
        z = _prior(decoder, job, primer)
    if config.beam > 1:
        return _beams(decoder, job, stop, primer, z, on_progress)
    return generate(
        decoder, num=job.count, max_tokens=config.max_tokens, processors=build_processors(config),
        constraints=job.constraints, seed=job.seed, primer=primer, z=z, stop=stop,
        on_progress=on_progress, shared_seed=shared,
    )  # fmt: skip


def _prior(decoder: LatentDecoder, job: _Job, primer: np.ndarray | None) -> Latent:
    """Prior draws for every piece (enough bars and windows for the budget), after a primer's own latent."""
    prompt = prompt_of(primer)
    bars = int(np.count_nonzero(prompt == vocab.BAR)) + (job.stop.bars or job.config.max_tokens // 4) + 2
    generators = row_generators(job.seed, job.count, stream=1)
    drawn = decoder.prior(generators, bars, len(prompt) + job.config.max_tokens)
    if primer is None:
        return drawn
    return extend(decoder.encode(torch.as_tensor(prompt)[None]), drawn)


def _stack(zs: list[Latent]) -> Latent:
    return Latent(*(torch.cat([getattr(z, f.name) for z in zs]) for f in dataclasses.fields(Latent)))


def _row(z: Latent | None, i: int) -> Latent | None:
    return None if z is None else Latent(*(getattr(z, f.name)[i : i + 1] for f in dataclasses.fields(Latent)))


def _beams(
    decoder: Decoder, job: _Job, stop: StopRule, primer: np.ndarray | None, z: Latent | None,
    on_progress: ProgressCallback | None,
) -> list[Generated]:  # fmt: skip
    """Beam search: the best `count` pieces of one search, or one search per latent row when they differ."""
    config = job.config
    searches = job.count if z is not None and z.piece.shape[0] > 1 else 1
    per_search = 1 if searches > 1 else job.count
    pieces: list[Generated] = []
    for i in range(searches):
        pieces += beam_search(
            decoder, beams=config.beam, max_tokens=config.max_tokens, constraints=job.constraints,
            stop=stop, primer=primer, z=_row(z, i), length_penalty=config.length_penalty,
            num_return=per_search, on_progress=on_progress,
        )  # fmt: skip
    return pieces


def _metadata(job: _Job, model: LoadedModel, task: str, inputs: list[Path]) -> dict:
    settings = job.config.model_dump(mode="json")
    settings["seed"] = job.seed
    return {
        "generator": "aurl",
        "aurl_version": __version__,
        "task": task,
        "inputs": [str(p) for p in inputs],
        "checkpoint": job.config.checkpoint,
        "checkpoint_sha256": model.sha256,
        "mode": model.mode,
        "vocab_version": vocab.VOCAB_VERSION,
        "settings": settings,
    }


def _write(piece: Generated, path: Path, fmt: str, meta: dict) -> SampledPiece:
    score = decode(piece.ids)
    write_piece(score, path, fmt, json.dumps(meta, sort_keys=True, separators=(",", ":")))
    end = np.array([score.end_ticks])
    return SampledPiece(
        path=str(path),
        tokens=len(piece.ids),
        new_tokens=piece.new_tokens,
        notes=score.n_notes,
        bars=_bars(piece.ids),
        seconds=float(ticks_to_seconds(end, score.tempos, score.ticks_per_beat)[0]),
        ended_by=piece.ended_by,
        log_prob=piece.log_prob,
        skipped_tokens=count_invalid(piece.ids),
    )


def _bars(ids: np.ndarray) -> int:
    """Bars that hold music: bar lines followed by some time (a closing bar line holds none)."""
    shifts = np.flatnonzero((ids >= vocab.TIME_SHIFT.start) & (ids < vocab.TIME_SHIFT.stop))
    return int(np.count_nonzero(ids[: shifts[-1]] == vocab.BAR)) if len(shifts) else 0
