"""`train` and `resume`: set a run up (folder, data, model, optimizers, checkpoint), run it, report.

A run folder holds config.json (the resolved settings: enough to rebuild everything), vocab.json,
metrics.jsonl, step-NNNNNNNN/ checkpoints and model.safetensors (the best weights so far).
"""

from __future__ import annotations

import json
import logging
import math
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from aurl import paths
from aurl.config import AurlSettings, ModelConfig, describe_validation_error
from aurl.data import Batches, TrainingData, load_training_data
from aurl.errors import CheckpointError, ConfigError, UsageError
from aurl.models import MusicTransformerVAEGAN, TokenTable
from aurl.tokens import VOCAB_SIZE, model_tables, vocab
from aurl.train import checkpoint as ckpt
from aurl.train import optim, rng
from aurl.train.device import check_precision, grad_scaler, resolve_device
from aurl.train.distributed import Dist
from aurl.train.loop import Parts, Trainer
from aurl.train.monitor import EventCallback, Monitor, TrainEvent, truncate_metrics, write_run_json
from aurl.train.result import TrainResult
from aurl.train.state import TrainState
from aurl.train.validate import validate

log = logging.getLogger("aurl.train")

CONFIG_FILE, VOCAB_FILE = "config.json", "vocab.json"
AVERAGED_FILE = "model-averaged.safetensors"
ProgressCallback = Any  # (done, total) -> None, while MIDI files are preprocessed


def default_run_dir(name: str | None) -> Path:
    """runs/<name> in the user data folder; without a name the start time (made unique)."""
    base = paths.data_dir() / "runs"
    if name:
        return base / name
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    candidate, n = base / stamp, 1
    while candidate.exists():
        n += 1
        candidate = base / f"{stamp}-{n}"
    return candidate


def with_preset(settings: AurlSettings, name: str | None) -> AurlSettings:
    """`settings` whose model section starts from the named preset (tiny, small, base, full).

    Model keys set by a flag, the environment or a config file keep their values; only keys left
    at their defaults take the preset's. None returns `settings` unchanged.

    Raises:
        ConfigError: unknown preset, or a combination the model does not accept.
    """
    if name is None:
        return settings
    given = settings.model.model_dump(include=settings.model.model_fields_set)
    return settings.model_copy(update={"model": ModelConfig.preset(name, **given)})


def run_settings(run_dir: str | Path, max_steps: int | None = None) -> AurlSettings:
    """The settings a run was started with (its config.json), with `max_steps` as its new horizon.

    Raises:
        UsageError: the folder does not exist (a missing input, as for every command).
        CheckpointError: no config.json, or one that is not valid settings.
    """
    if not Path(run_dir).exists():
        raise UsageError(f"run folder '{run_dir}' does not exist; pass the folder `aurl train` wrote")
    path = Path(run_dir) / CONFIG_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(
            f"'{run_dir}' is not a run folder: it has no {CONFIG_FILE}; pass the folder `aurl train` wrote"
        ) from None
    except (OSError, ValueError) as error:
        raise CheckpointError(f"cannot read '{path}': {error}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"'{path}' does not hold settings (a JSON object)")
    if max_steps is not None:
        data.setdefault("train", {})["max_steps"] = max_steps
    try:
        return AurlSettings(**data)
    except ValidationError as error:
        raise CheckpointError(
            f"'{path}' holds invalid settings: {describe_validation_error(error)}"
        ) from None


def resume(
    run_dir: str | Path, *, max_steps: int | None = None, on_event: EventCallback | None = None
) -> TrainResult:
    """Continue a run from its newest good checkpoint; `max_steps` moves the run's horizon.

    Raises:
        CheckpointError: not a run folder, no usable checkpoint, or another vocabulary version.
    """
    settings = run_settings(run_dir, max_steps)
    return train(settings, run_dir=run_dir, resume=True, on_event=on_event)


def train(
    settings: AurlSettings,
    *,
    run_dir: str | Path | None = None,
    resume: bool = False,
    max_steps: int | None = None,
    on_event: EventCallback | None = None,
    on_progress: ProgressCallback | None = None,
) -> TrainResult:
    """Train a model as `settings` say, in a run folder; resume continues its newest checkpoint.

    Under torchrun (RANK, WORLD_SIZE set) every process calls this; rank 0 writes the files.

    Args:
        settings: all settings (train, data, model sections matter).
        run_dir: the run folder (default: train.run_dir, else runs/<name or start time> in the user
            data folder).
        resume: continue from the newest good checkpoint in run_dir.
        max_steps: stop this session at this step (the schedule keeps the run's horizon).
        on_event: called with every `TrainEvent` (start, step, eval, quality, checkpoint, anomaly,
            recovery, end).
        on_progress: `on_progress(done, total)` while MIDI data is preprocessed.

    Raises:
        ConfigError: settings that cannot work (device, precision, vocabulary size, batch size).
        UsageError: a fresh run in a folder that already holds checkpoints.
        CheckpointError: resume without a usable checkpoint, or one of another vocabulary.
        DataError: the training data cannot be read.
        KeyboardInterrupt: SIGINT/SIGTERM, after a checkpoint was written.
    """
    started = time.perf_counter()
    config = settings.train
    device_type = resolve_device(config.device).type
    dist = Dist.from_env(device_type)
    try:
        device = resolve_device(config.device, dist.local_rank)
        check_precision(config, device)
        _check_model(settings)
        folder = Path(dist.broadcast(str(_run_folder(settings, run_dir, resume)) if dist.is_main else None))
        if dist.is_main:
            _prepare_folder(folder, settings, resume)
        data = _load_data(settings, dist, on_progress)
        session = _Session(settings, folder, dist, device, data, on_event)
        return session.run(resume, max_steps, started)
    finally:
        dist.close()


def _check_model(settings: AurlSettings) -> None:
    if settings.model.vocab_size != VOCAB_SIZE:
        raise ConfigError(
            f"model.vocab_size = {settings.model.vocab_size} but the vocabulary has {VOCAB_SIZE} tokens; "
            f"leave model.vocab_size at {VOCAB_SIZE}"
        )


def _run_folder(settings: AurlSettings, run_dir: str | Path | None, resume: bool) -> Path:
    folder = Path(run_dir) if run_dir is not None else settings.train.run_dir
    if folder is None:
        if resume:
            raise UsageError("resume needs the run folder; pass it as RUN_DIR")
        folder = default_run_dir(settings.train.name)
    return folder


def _prepare_folder(folder: Path, settings: AurlSettings, resume: bool) -> None:
    if resume:
        if not (folder / CONFIG_FILE).is_file():
            raise CheckpointError(
                f"'{folder}' is not a run folder: it has no {CONFIG_FILE}; pass the folder `aurl train` wrote"
            )
    elif ckpt.checkpoint_steps(folder):
        raise UsageError(
            f"run folder '{folder}' already holds checkpoints; continue it with `aurl resume {folder}` "
            "or choose another --run-dir"
        )
    folder.mkdir(parents=True, exist_ok=True)
    resolved = settings.model_dump(mode="json")
    resolved["train"]["run_dir"] = str(folder)
    write_run_json(folder / CONFIG_FILE, resolved)
    write_run_json(folder / VOCAB_FILE, vocab.describe())


def _load_data(settings: AurlSettings, dist: Dist, on_progress: ProgressCallback | None) -> TrainingData:
    # Rank 0 builds any cache first; the others then find every entry in it.
    data = None
    if dist.is_main:
        data = load_training_data(settings.data, seed=settings.train.seed, on_progress=on_progress)
    dist.barrier()
    if data is None:
        data = load_training_data(settings.data, seed=settings.train.seed)
    return data


def build_model(settings: AurlSettings, device: torch.device) -> MusicTransformerVAEGAN:
    """The model of `settings.model` with aurl's token table, seeded by train.seed, on `device`."""
    torch.manual_seed(settings.train.seed)
    return MusicTransformerVAEGAN(settings.model, TokenTable(**model_tables())).to(device)


def build_optimizers(
    model: MusicTransformerVAEGAN, settings: AurlSettings
) -> dict[str, torch.optim.Optimizer]:
    """The generator's optimizer, and in vae_gan mode the discriminator's (train.disc_lr)."""
    c = settings.train
    out = {"generator": optim.build_optimizer(model.generator_parameters(), c, c.lr)}
    if model.discriminator_parameters():
        out["discriminator"] = optim.build_optimizer(model.discriminator_parameters(), c, c.disc_lr)
    return out


class _Session:
    """One call of `train`: builds the parts, restores or starts the state, runs, reports."""

    def __init__(
        self,
        settings: AurlSettings,
        folder: Path,
        dist: Dist,
        device: torch.device,
        data: TrainingData,
        on_event: EventCallback | None,
    ) -> None:
        self.settings, self.folder, self.dist, self.device = settings, folder, dist, device
        self.data, self.on_event = data, on_event
        self.last: dict[str, TrainEvent] = {}  # the newest event of each kind
        self.anomalies = 0
        self.tokens_at_start = 0

    def _record(self, event: TrainEvent) -> None:
        self.last["step" if event.kind == "progress" else event.kind] = event
        self.anomalies += event.kind == "anomaly"
        if self.on_event is not None:
            self.on_event(event)

    def run(self, resume: bool, max_steps: int | None, started: float) -> TrainResult:
        s, c, dist = self.settings, self.settings.train, self.dist
        model = build_model(s, self.device)
        optimizers = build_optimizers(model, s)
        scaler = grad_scaler(c, self.device)
        train_source = Batches(
            self.data.train,
            s.data,
            seed=c.seed,
            augment=s.data.augment,
            rank=dist.rank,
            world_size=dist.world_size,
        )
        val_source = None
        if len(self.data.val):
            val_source = Batches(
                self.data.val, s.data, seed=c.seed, augment=False, rank=dist.rank, world_size=dist.world_size
            )
        state, resumed_from, saved = self._start(model, optimizers, scaler, resume)
        self.tokens_at_start = state.tokens
        forward = self._forward(model)
        total = _total_steps(s, train_source.num_batches(0))
        stop = min(max_steps, total) if max_steps is not None else total
        monitor = Monitor(self.folder, self._record, write=dist.is_main)
        trainer = Trainer(
            s, self.folder, Parts(model, forward, optimizers, scaler, self.device), train_source, val_source,
            dist, monitor, total_steps=total, stop_step=stop, state=state, quality=self._quality(),
        )  # fmt: skip
        if saved is not None:
            trainer.detector.load_state_dict(saved.get("anomaly", {}))
        monitor.emit(TrainEvent("start", state.step, self._start_data(model, total, resumed_from)))
        if resumed_from is None:
            trainer.checkpoint()  # step 0: what a roll-back or a resume can always return to
        stopped = "interrupted"
        try:
            stopped = trainer.run()
        finally:
            monitor.emit(TrainEvent("end", state.step, {"stopped": stopped}))
            monitor.close()
        averaged = self._average(model, val_source, trainer) if c.average_best else None
        return self._result(model, state, stopped, resumed_from, averaged, time.perf_counter() - started)

    def _start(
        self,
        model: MusicTransformerVAEGAN,
        optimizers: dict[str, torch.optim.Optimizer],
        scaler: torch.amp.GradScaler | None,
        resume: bool,
    ) -> tuple[TrainState, int | None, dict[str, Any] | None]:
        c, dist = self.settings.train, self.dist
        if not resume:
            if dist.rank:  # every rank builds the same weights; their dropout streams differ
                rng.seed_all(c.seed + 1_000_003 * dist.rank)
            return TrainState(), None, None
        last = ckpt.latest_checkpoint(self.folder)
        if last is None:
            raise CheckpointError(f"run folder '{self.folder}' has no usable checkpoint to resume from")
        ckpt.load_checkpoint(last, model, optimizers, self.device)
        state = TrainState.from_json(last.state["train"])
        states = last.state.get("rng") or []
        if len(states) == dist.world_size:
            rng.restore(states[dist.rank])
        else:  # another world size: fresh, distinct streams per rank
            rng.seed_all(c.seed + 7_919 * state.step + 1_000_003 * dist.rank)
        if scaler is not None and last.state.get("scaler"):
            scaler.load_state_dict(last.state["scaler"])
        if dist.is_main:
            truncate_metrics(self.folder, state.step)
        log.info("resuming %s from step %d", self.folder, state.step)
        return state, state.step, last.state

    def _forward(self, model: MusicTransformerVAEGAN) -> torch.nn.Module:
        forward = self.dist.wrap(model, self.device)
        if self.settings.train.compile:
            forward = torch.compile(forward)  # type: ignore[assignment]
        return forward

    def _quality(self) -> Any:
        c = self.settings.train
        if c.quality_samples == 0:
            return None
        from aurl.train.quality import sample_quality

        def measure(model: MusicTransformerVAEGAN, step: int) -> dict[str, float]:
            out = self.folder / "samples" / f"step-{step:08d}"
            return sample_quality(
                model, count=c.quality_samples, max_tokens=c.quality_tokens, seed=c.seed + step, out_dir=out
            )

        return measure

    def _start_data(
        self, model: MusicTransformerVAEGAN, total: int, resumed_from: int | None
    ) -> dict[str, Any]:
        c = self.settings.train
        parameters = sum(p.numel() for p in model.parameters() if p.requires_grad)
        description = (
            f"training {model.config.mode} ({parameters:,} parameters) on {self.device}, {c.precision}, "
            f"{self.dist.world_size} process(es), {total} steps, run folder {self.folder}; "
            f"{self.data.description}"
        )
        return {
            "description": description, "parameters": parameters, "total_steps": total,
            "resumed_from": resumed_from, "run_dir": str(self.folder), "world_size": self.dist.world_size,
        }  # fmt: skip

    def _average(
        self, model: MusicTransformerVAEGAN, val_source: Batches | None, trainer: Trainer
    ) -> tuple[Path, float | None] | None:
        c = self.settings.train
        steps = ckpt.best_steps(self.folder, c.average_best)
        if not steps:
            return None
        weights = ckpt.average_weights([ckpt.step_dir(self.folder, s) / ckpt.MODEL_FILE for s in steps])
        averaged = build_model(self.settings, self.device)
        load_saved_state(averaged, weights)
        result = validate(
            averaged, val_source, max_batches=c.eval_batches, seq_len=self.settings.data.seq_len,
            device=self.device, dist=self.dist, autocast=trainer.autocast,
        )  # fmt: skip
        val = result["val_loss"] if result else None
        path = self.folder / AVERAGED_FILE
        if self.dist.is_main:
            from aurl.train.loop import export_weights

            meta = ckpt.weights_metadata(
                trainer.state.step,
                val,
                {
                    "averaged_steps": ",".join(map(str, steps)),
                    **ckpt.recommended_metadata(self.settings.sample),
                },
            )
            export_weights(averaged, path, c.weights_dtype, {**meta, "mode": model.config.mode})
        return path, val

    def _result(
        self,
        model: MusicTransformerVAEGAN,
        state: TrainState,
        stopped: str,
        resumed_from: int | None,
        averaged: tuple[Path, float | None] | None,
        seconds: float,
    ) -> TrainResult:
        step_event, quality = self.last.get("step"), self.last.get("quality")
        last_eval = self.last["eval"].data if "eval" in self.last else {}
        best_file = self.folder / ckpt.MODEL_FILE
        newest = ckpt.checkpoint_steps(self.folder)
        session_tokens = state.tokens - self.tokens_at_start
        return TrainResult(
            run_dir=str(self.folder),
            mode=model.config.mode,
            parameters=sum(p.numel() for p in model.parameters() if p.requires_grad),
            step=state.step,
            epoch=state.epoch,
            tokens=state.tokens,
            stopped=stopped,
            resumed_from=resumed_from,
            train_loss=step_event.data.get("recon") if step_event else None,
            val_loss=last_eval.get("val_loss"),
            best_val_loss=state.best_val if math.isfinite(state.best_val) else None,
            best_step=state.best_step if state.best_step >= 0 else None,
            val_perplexity=last_eval.get("val_perplexity"),
            val_bits_per_token=last_eval.get("val_bits_per_token"),
            averaged_val_loss=averaged[1] if averaged else None,
            seconds=seconds,
            tokens_per_second=session_tokens / seconds if seconds > 0 else 0.0,
            model_path=str(best_file) if best_file.is_file() else None,
            averaged_path=str(averaged[0]) if averaged else None,
            last_checkpoint=str(ckpt.step_dir(self.folder, newest[-1])) if newest else None,
            anomalies=self.anomalies,
            skipped_steps=state.skipped,
            rollbacks=state.rollbacks,
            quality={k: (v if math.isfinite(v) else None) for k, v in quality.data.items()}
            if quality
            else {},
        )


def load_saved_state(model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> None:
    """Load tensors read from a weights file into `model`.

    safetensors stores a tied tensor once (the output head shares the embedding), so the file lacks
    the aliases; any other missing or unexpected name is an error.

    Raises:
        CheckpointError: the tensors do not fit the model.
    """
    expected = model.state_dict()
    first_name: dict[int, str] = {}
    for name, tensor in expected.items():
        first_name.setdefault(tensor.data_ptr(), name)
    aliases = {name for name, tensor in expected.items() if first_name[tensor.data_ptr()] != name}
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if unexpected or set(missing) - aliases:
        raise CheckpointError(
            f"weights do not fit the model: missing {sorted(set(missing) - aliases)[:3]}, "
            f"unexpected {sorted(unexpected)[:3]}"
        )


def _total_steps(settings: AurlSettings, batches_per_epoch: int) -> int:
    """The schedule's horizon: train.max_steps, else every epoch's batches over the accumulation."""
    c = settings.train
    if c.max_steps is not None:
        return c.max_steps
    return max(1, math.ceil(c.epochs * batches_per_epoch / c.grad_accumulation))
