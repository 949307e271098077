"""The training loop: steps, schedule, evaluation, checkpoints, anomalies, recovery and interrupts.

Like minGPT's trainer it knows nothing of the model beyond `forward(batch, step=)` returning
"loss" and its terms (and, in vae_gan mode, `discriminator_loss` and `discriminator_parameters`).
Everything that decides what a step computes (weights, optimizer moments, RNG states, data
position, anomaly statistics, loss scale) is in the checkpoint, so a resumed run repeats an
uninterrupted one bit for bit on the CPU.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from aurl.config import AurlSettings
from aurl.data import seq_len_at
from aurl.errors import AurlError
from aurl.models import MusicTransformerVAEGAN
from aurl.train import checkpoint as ckpt
from aurl.train import optim, rng
from aurl.train.anomaly import AnomalyDetector, StepStats
from aurl.train.device import autocast, memory_bytes
from aurl.train.distributed import Dist
from aurl.train.monitor import Monitor, TrainEvent
from aurl.train.schedule import lr_factor
from aurl.train.state import TrainState
from aurl.train.step import (
    REPORTED,
    clip,
    discriminator_backward,
    predicted_tokens,
    to_device,
    weighted_backward,
)
from aurl.train.stream import BatchSource, DataStream
from aurl.train.validate import validate


class TrainingDiverged(AurlError):
    """Training kept producing NaN/Inf or diverging losses after every allowed roll-back."""


@dataclass
class Parts:
    """What the loop trains: the unwrapped model, what is called for forward, optimizers, scaler."""

    model: MusicTransformerVAEGAN
    forward: nn.Module
    optimizers: dict[str, torch.optim.Optimizer]
    scaler: torch.amp.GradScaler | None
    device: torch.device


class Trainer:
    """Runs steps until max_steps, the last epoch, early stopping or an interrupt.

    Args:
        settings: the run's settings.
        run_dir: the run folder (rank 0 writes here).
        parts: model, forward wrapper, optimizers, scaler and device.
        train_source, val_source: this rank's training and validation batches (val may be None).
        dist: this process's rank and world.
        monitor: where events go.
        total_steps: the schedule's horizon.
        stop_step: the step this call stops at (<= total_steps).
        state: where the run stands (fresh or from a checkpoint).
        quality: measures samples at each evaluation: (model, step) -> metrics, or None (off).
    """

    def __init__(
        self,
        settings: AurlSettings,
        run_dir: Path,
        parts: Parts,
        train_source: BatchSource,
        val_source: BatchSource | None,
        dist: Dist,
        monitor: Monitor,
        *,
        total_steps: int,
        stop_step: int,
        state: TrainState,
        quality: Callable[[MusicTransformerVAEGAN, int], dict[str, float]] | None = None,
    ) -> None:
        self.settings, self.config, self.run_dir = settings, settings.train, run_dir
        self.p, self.dist, self.monitor = parts, dist, monitor
        self.val_source, self.quality = val_source, quality
        self.total_steps, self.stop_step, self.state = total_steps, stop_step, state
        self.detector = AnomalyDetector(self.config)
        self.gan = parts.model.config.mode == "vae_gan"
        pin = parts.device.type == "cuda"
        self.stream = DataStream(
            train_source, self.config.epochs, state.epoch, state.index,
            workers=settings.data.workers, pin_memory=pin,
        )  # fmt: skip
        self.autocast = lambda: autocast(self.config, parts.device)
        self._interrupted = False
        self._last_disc: float | None = None
        self._last_eval = -1
        self._last_ckpt = -1
        self._clock = _Clock()

    # --- the loop ---------------------------------------------------------------------------------------

    def run(self) -> str:
        """Train; returns why it stopped: max_steps, epochs, early_stopping.

        Raises:
            KeyboardInterrupt: after SIGINT or SIGTERM, once a checkpoint of the current step is written.
            TrainingDiverged: bad steps persisted through every allowed roll-back.
        """
        with self._signals():
            try:
                stopped = self._loop()
            finally:
                self.stream.close()
        self._finish()
        return stopped

    def _loop(self) -> str:
        while True:
            if self.dist.any(self._interrupted, self.p.device):
                self._finish(evaluate=False)
                raise KeyboardInterrupt
            if self.state.step >= self.stop_step:
                return "max_steps"
            seq_len = seq_len_at(self.state.step, self.settings.data)
            micro = self.stream.take(self.config.grad_accumulation, seq_len)
            self.state.epoch, self.state.index = self.stream.epoch, self.stream.index
            if not self.dist.any(bool(micro), self.p.device):
                return "epochs"
            stepped = self._step(micro)
            if stepped and self._after_step():
                return "early_stopping"

    def _after_step(self) -> bool:
        """Log, evaluate and checkpoint as scheduled; True when early stopping says stop."""
        step, c = self.state.step, self.config
        evaluate = step % c.eval_every == 0 or step % c.checkpoint_every == 0
        if evaluate:
            self._evaluate()
        if step % c.checkpoint_every == 0:
            self.checkpoint()
        return evaluate and c.early_stopping > 0 and self.state.evals_since_best >= c.early_stopping

    def _finish(self, evaluate: bool = True) -> None:
        """At the end (or an interrupt): evaluate and checkpoint the current step unless done already."""
        if evaluate and self._last_eval != self.state.step and self.state.step > 0:
            self._evaluate()
        if self._last_ckpt != self.state.step:
            self.checkpoint()

    # --- one step ---------------------------------------------------------------------------------------

    def _set_lr(self) -> float:
        factor = lr_factor(self.state.step, self.total_steps, self.config) * self.state.lr_scale
        lr = self.config.lr * factor
        optim.set_lr(self.p.optimizers["generator"], lr)
        if "discriminator" in self.p.optimizers:
            optim.set_lr(self.p.optimizers["discriminator"], self.config.disc_lr * factor)
        return lr

    def _step(self, micro: list[dict[str, Tensor]]) -> bool:
        """One optimizer step over `micro`; False when its update was skipped as an anomaly."""
        started = time.perf_counter()
        p, c, st = self.p, self.config, self.state
        lr = self._set_lr()
        batches = [to_device(b, p.device) for b in micro]
        local = torch.tensor(float(sum(predicted_tokens(b) for b in batches)), device=p.device)
        total_tokens = int(self.dist.sum(local).item())
        adversarial = self.gan and st.step >= c.adversarial_start
        g_opt = p.optimizers["generator"]
        g_opt.zero_grad(set_to_none=True)
        sums, outputs = weighted_backward(
            p.forward, batches, step=st.step, total_tokens=total_tokens, world_size=self.dist.world_size,
            autocast=self.autocast, scaler=p.scaler, adversarial=adversarial, keep_outputs=adversarial,
        )  # fmt: skip
        terms = dict(zip(REPORTED, self.dist.sum(sums).tolist(), strict=True))
        if p.scaler is not None:
            p.scaler.unscale_(g_opt)
        grad_norm = clip(p.model.generator_parameters(), c.clip_grad_norm)
        if p.scaler is not None and not math.isfinite(grad_norm) and math.isfinite(terms["loss"]):
            grad_norm = 0.0  # fp16 overflow: the scaler skips this update and lowers its scale itself
        stats = self._stats(terms, grad_norm, total_tokens, started)
        anomalies = self.detector.check(stats)
        for anomaly in anomalies:
            self.monitor.emit(TrainEvent("anomaly", st.step, {**anomaly.__dict__}))
        if any(a.recover for a in anomalies):
            g_opt.zero_grad(set_to_none=True)
            if p.scaler is not None:
                p.scaler.update()  # closes this iteration's unscale_ (and lowers the scale after an overflow)
            self._bad_step()
            return False
        self._update(g_opt, batches, outputs, total_tokens, adversarial)
        st.bad_streak, st.step, st.tokens = 0, st.step + 1, st.tokens + total_tokens
        self._clock.tick(total_tokens, time.perf_counter() - started + self.stream.wait_s)
        if st.step % c.log_every == 0 or st.step == 1:
            self._log_step(terms, grad_norm, lr)
        else:  # for a live display only: neither logged nor written
            data = {**terms, "lr": lr, "total_steps": self.stop_step, "tokens_per_s": self._clock.last_rate}
            self.monitor.emit(TrainEvent("progress", st.step, data))
        return True

    def _update(
        self,
        g_opt: torch.optim.Optimizer,
        batches: list[dict[str, Tensor]],
        outputs: list[dict[str, Tensor]],
        total_tokens: int,
        adversarial: bool,
    ) -> None:
        p = self.p
        if p.scaler is not None:
            p.scaler.step(g_opt)
        else:
            g_opt.step()
        if adversarial:
            d_opt = p.optimizers["discriminator"]
            d_opt.zero_grad(set_to_none=True)  # drops what the generator's loss left on D
            d_sum = discriminator_backward(
                p.model, batches, outputs, total_tokens=total_tokens,
                world_size=self.dist.world_size, autocast=self.autocast, scaler=p.scaler,
            )  # fmt: skip
            self.dist.average_grads(p.model.discriminator_parameters())
            self._last_disc = float(self.dist.sum(d_sum))
            if math.isfinite(self._last_disc):
                if p.scaler is not None:
                    p.scaler.step(d_opt)
                else:
                    d_opt.step()
            d_opt.zero_grad(set_to_none=True)
        if p.scaler is not None:
            p.scaler.update()

    def _stats(self, terms: dict[str, float], grad_norm: float, tokens: int, started: float) -> StepStats:
        seconds = time.perf_counter() - started + self.stream.wait_s
        return StepStats(
            step=self.state.step,
            loss=terms["recon"] if math.isfinite(terms["loss"]) else terms["loss"],
            grad_norm=grad_norm,
            kl=terms["kl"] if self.p.model.latent else None,
            beta=terms["beta"] if self.p.model.latent else None,
            disc_loss=self._last_disc,
            # A new loader's first batch (an epoch's start, a new sequence length) includes its
            # start-up: a one-off wait, not the rate training runs at.
            tokens_per_s=tokens / seconds if seconds > 0 and not self.stream.new_loader else None,
            wait_s=self.stream.wait_s,
            memory_bytes=memory_bytes(self.p.device)
            if self.state.step % self.config.log_every == 0
            else None,
            seq_len=seq_len_at(self.state.step, self.settings.data),
            past_warmup=self.state.step >= self.config.warmup_steps,
        )

    def _log_step(self, terms: dict[str, float], grad_norm: float, lr: float) -> None:
        st = self.state
        data: dict[str, Any] = {**terms, "grad_norm": grad_norm, "lr": lr, "epoch": st.epoch}
        if self._last_disc is not None:
            data["disc_loss"] = self._last_disc
        data["tokens_per_s"] = self._clock.rate()
        data["tokens"] = st.tokens
        data["total_steps"] = self.stop_step
        data["eta_s"] = (self.stop_step - st.step) * self._clock.seconds_per_step()
        data["seq_len"] = seq_len_at(st.step, self.settings.data)
        self.monitor.emit(TrainEvent("step", st.step, data))

    # --- anomalies and recovery -------------------------------------------------------------------------

    def _bad_step(self) -> None:
        st = self.state
        st.bad_streak += 1
        st.skipped += 1
        if st.bad_streak >= self.config.recovery_skips:
            self._roll_back()

    def _roll_back(self) -> None:
        """Reload the last good checkpoint's weights and optimizers at a lower learning rate.

        The data position stays where it is: the batches that went wrong are not replayed.

        Raises:
            TrainingDiverged: no checkpoint to return to, or no roll-backs left.
        """
        st, c = self.state, self.config
        self.dist.barrier()
        last = ckpt.latest_checkpoint(self.run_dir)
        if last is None or st.rollbacks >= c.recovery_rollbacks:
            raise TrainingDiverged(
                f"training went wrong (NaN/Inf or diverging loss) {st.bad_streak} steps in a row at step "
                f"{st.step} after {st.rollbacks} roll-backs; lower train.lr (now {c.lr:g} x {st.lr_scale:g}) "
                "or raise train.warmup_steps"
            )
        ckpt.load_checkpoint(last, self.p.model, self.p.optimizers, self.p.device)
        saved = TrainState.from_json(last.state["train"])
        self.detector.load_state_dict(last.state.get("anomaly", {}))
        if self.p.scaler is not None and last.state.get("scaler"):
            self.p.scaler.load_state_dict(last.state["scaler"])
        old_step = st.step
        st.step, st.lr_scale = saved.step, st.lr_scale * c.recovery_lr_factor
        st.rollbacks, st.bad_streak = st.rollbacks + 1, 0
        message = (
            f"rolled back from step {old_step} to checkpoint step {saved.step}; learning rate scaled "
            f"by {st.lr_scale:g} (roll-back {st.rollbacks} of {c.recovery_rollbacks})"
        )
        self.monitor.emit(TrainEvent("recovery", st.step, {"message": message, "to_step": saved.step}))

    # --- evaluation and checkpoints ---------------------------------------------------------------------

    def _evaluate(self) -> None:
        st, c = self.state, self.config
        self._last_eval = st.step
        result = validate(
            self.p.model, self.val_source, max_batches=c.eval_batches, seq_len=self.settings.data.seq_len,
            device=self.p.device, dist=self.dist, autocast=self.autocast,
        )  # fmt: skip
        if result is not None:
            st.val_loss, st.val_step = result["val_loss"], st.step
            improved = result["val_loss"] < st.best_val
            if improved:
                st.best_val, st.best_step, st.evals_since_best = result["val_loss"], st.step, 0
                self._export_best()
            else:
                st.evals_since_best += 1
            self.monitor.emit(TrainEvent("eval", st.step, {**result, "best_val_loss": st.best_val}))
        elif st.best_step < 0 or st.step >= st.best_step:
            # Without validation data the latest weights are the best there are.
            st.best_step = st.step
            self._export_best()
        if self.quality is not None and self.dist.is_main and st.step > 0:
            self.monitor.emit(TrainEvent("quality", st.step, self.quality(self.p.model, st.step)))

    def _export_best(self) -> None:
        if self.dist.is_main:
            meta = ckpt.weights_metadata(
                self.state.step,
                self.state.val_loss,
                {"mode": self.p.model.config.mode, **ckpt.recommended_metadata(self.settings.sample)},
            )
            export_weights(self.p.model, self.run_dir / ckpt.MODEL_FILE, self.config.weights_dtype, meta)

    def checkpoint_state(self) -> dict[str, Any]:
        """The JSON part of a checkpoint: counters, RNG states of every rank, anomaly and scaler state."""
        states = self.dist.gather(rng.capture())
        return {
            "step": self.state.step,
            "epoch": self.state.epoch,
            "index": self.state.index,
            "val_loss": self.state.val_loss if self.state.val_step == self.state.step else None,
            "world_size": self.dist.world_size,
            "train": self.state.to_json(),
            "rng": states,
            "anomaly": self.detector.state_dict(),
            "scaler": self.p.scaler.state_dict() if self.p.scaler is not None else None,
            "scheduler": {
                "schedule": self.config.schedule, "warmup_steps": self.config.warmup_steps,
                "total_steps": self.total_steps, "lr_scale": self.state.lr_scale,
                "lr_factor": lr_factor(self.state.step, self.total_steps, self.config) * self.state.lr_scale,
            },  # the learning rate is a pure function of these and the step
        }  # fmt: skip

    def checkpoint(self) -> None:
        """Write the checkpoint of the current step (rank 0), prune old ones, and wait for every rank."""
        self._last_ckpt = self.state.step
        state = self.checkpoint_state()
        if self.dist.is_main:
            path = ckpt.save_checkpoint(self.run_dir, self.p.model, self.p.optimizers, state)
            ckpt.prune(
                self.run_dir, self.config.keep_last, max(self.config.keep_best, self.config.average_best)
            )
            self.monitor.emit(TrainEvent("checkpoint", self.state.step, {"path": str(path)}))
        self.dist.barrier()

    # --- interrupts -------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        """SIGINT and SIGTERM set a flag the loop checks between steps (a second SIGINT stops at once)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handle(signum: int, frame: Any) -> None:
            self._interrupted = True
            signal.signal(signal.SIGINT, signal.default_int_handler)

        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        for s in previous:
            signal.signal(s, handle)
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


def export_weights(model: MusicTransformerVAEGAN, path: Path, dtype: str, metadata: dict[str, str]) -> None:
    """Save the model's weights (atomically) in `dtype` (fp32, bf16 or fp16) with `metadata`."""
    from aurl.models import save_weights

    if dtype == "fp32":
        save_weights(model, path, {**metadata, "weights_dtype": dtype})
        return
    import copy

    target = {"bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
    half = copy.deepcopy(model).to(target)
    save_weights(half, path, {**metadata, "weights_dtype": dtype})


class _Clock:
    """Training tokens/s and seconds per step over the steps since the last report (evaluation and
    checkpoint time left out)."""

    def __init__(self) -> None:
        self._tokens, self._seconds, self._steps = 0, 0.0, 0
        self._rate, self._sps = 0.0, math.nan
        self.last_rate = 0.0  # tokens/s of the latest step alone

    def tick(self, tokens: int, seconds: float) -> None:
        self.last_rate = tokens / seconds if seconds > 0 else 0.0
        self._tokens += tokens
        self._seconds += seconds
        self._steps += 1

    def rate(self) -> float:
        """Tokens per second since the last call (the previous value if no step ran since)."""
        if self._steps and self._seconds > 0:
            self._rate, self._sps = self._tokens / self._seconds, self._seconds / self._steps
            self._tokens, self._seconds, self._steps = 0, 0.0, 0
        return self._rate

    def seconds_per_step(self) -> float:
        return self._sps
