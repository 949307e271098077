"""The anomaly detector: twelve kinds of training trouble, each reported with a suggestion.

Two kinds make the trainer act instead of training on garbage: a non-finite loss or gradient and
a diverging loss mark the step "bad" (its update is skipped; after `recovery_skips` bad steps in a
row the trainer rolls back to the last good checkpoint at a lower learning rate). The others are
warnings, each repeated at most once per `COOLDOWN` steps. Loss statistics follow the
reconstruction cross-entropy, which is never negative (the balanced total can be).

The detector's state is plain JSON (`state_dict`), saved in every checkpoint: whether a step is
skipped depends on it, so a resumed run must start from the same running statistics.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from aurl.config.train import TrainConfig

KINDS = (
    "nan_loss",
    "nan_grad",
    "grad_spike",
    "vanishing_grad",
    "loss_spike",
    "divergence",
    "discriminator_collapse",
    "posterior_collapse",
    "no_progress",
    "throughput_drop",
    "loader_stall",
    "memory_growth",
)
RECOVER = frozenset({"nan_loss", "nan_grad", "divergence"})
SUGGESTIONS = {
    "nan_loss": "the batch was skipped; if it repeats lower train.lr, use bf16 rather than fp16, "
    "or check the data",
    "nan_grad": "the batch was skipped; lower train.lr or train.clip_grad_norm",
    "grad_spike": "clipping caught it; if spikes recur lower train.lr or train.clip_grad_norm",
    "vanishing_grad": "raise train.lr or shorten train.warmup_steps; check that the loss reaches the weights",
    "loss_spike": "often a bad batch; if spikes recur lower train.lr or raise train.warmup_steps",
    "divergence": "updates are skipped and the run rolls back; lower train.lr or raise train.warmup_steps",
    "discriminator_collapse": "lower train.disc_lr, raise model.adv_weight or train.adversarial_start",
    "posterior_collapse": "raise model.free_bits or model.word_dropout, or use model.kl_schedule cyclical",
    "no_progress": "the learning rate may be too low (raise train.lr) or too high (lower it)",
    "throughput_drop": "another process may compete for the device, or the data loader falls behind",
    "loader_stall": "raise data.workers or put the token cache on a faster disk",
    "memory_growth": "something keeps tensors alive; report it with the run's config.json",
}
COOLDOWN = 100  # steps between two warnings of the same kind
_ALPHA = 0.1  # weight of the newest value in the running means
_WARM = 20  # steps of statistics before spikes and drops are judged
_STREAK = 20  # consecutive steps that make vanishing gradients and divergence
_COLLAPSE = 50  # consecutive steps that make posterior or discriminator collapse


@dataclass(frozen=True)
class Anomaly:
    """One finding: its kind, the step, what was measured, and what to try."""

    kind: str
    step: int
    message: str
    suggestion: str

    @property
    def recover(self) -> bool:
        """True for kinds that skip the step's update (and may roll the run back)."""
        return self.kind in RECOVER


@dataclass
class StepStats:
    """What the trainer measured in one step; None where not measured (e.g. no KL in transformer mode)."""

    step: int
    loss: float
    grad_norm: float
    kl: float | None = None
    beta: float | None = None
    disc_loss: float | None = None
    tokens_per_s: float | None = None
    wait_s: float | None = None
    memory_bytes: int | None = None
    seq_len: int | None = None
    past_warmup: bool = True


@dataclass
class _State:
    n: int = 0
    loss_mean: float = 0.0
    loss_var: float = 0.0
    best_mean: float = math.inf
    progress_ref: float = math.inf
    progress_step: int = 0
    grad_mean: float = 0.0
    vanish_streak: int = 0
    diverge_streak: int = 0
    kl_streak: int = 0
    disc_streak: int = 0
    speed_mean: float = 0.0
    speed_n: int = 0
    memory_base: int = 0
    seq_len: int = 0
    last_warned: dict[str, int] = field(default_factory=dict)


class AnomalyDetector:
    """Watches per-step statistics; `check` returns the anomalies of one step."""

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.s = _State()

    def state_dict(self) -> dict[str, Any]:
        """JSON-able running statistics (infinities as None)."""
        return {k: (None if isinstance(v, float) and math.isinf(v) else v) for k, v in asdict(self.s).items()}

    def load_state_dict(self, data: dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""
        defaults = asdict(_State())
        values = {
            k: (defaults[k] if data.get(k, defaults[k]) is None else data.get(k, defaults[k]))
            for k in defaults
        }
        self.s = _State(**values)

    def check(self, stats: StepStats) -> list[Anomaly]:
        """Judge one step; running statistics learn only from finite, non-diverging steps."""
        found: list[Anomaly] = []
        if not math.isfinite(stats.loss):
            found.append(self._anomaly("nan_loss", stats.step, f"loss is {stats.loss}"))
        elif not math.isfinite(stats.grad_norm):
            found.append(self._anomaly("nan_grad", stats.step, f"gradient norm is {stats.grad_norm}"))
        else:
            found += self._loss_checks(stats) + self._grad_checks(stats)
            if not any(a.recover for a in found):
                self._learn(stats)
        found += self._model_checks(stats) + self._system_checks(stats)
        return [a for a in found if a.recover or self._may_warn(a)]

    # --- loss and gradients ----------------------------------------------------------------------------

    def _loss_checks(self, stats: StepStats) -> list[Anomaly]:
        s, c = self.s, self.config
        out: list[Anomaly] = []
        if s.n < _WARM:
            return out
        std = math.sqrt(max(s.loss_var, 1e-12))
        if stats.loss > s.loss_mean + c.anomaly_loss_spike * std and stats.loss > 1.05 * s.loss_mean:
            out.append(
                self._anomaly("loss_spike", stats.step, f"loss {stats.loss:.4g} vs running {s.loss_mean:.4g}")
            )
        ahead = (1 - _ALPHA) * s.loss_mean + _ALPHA * stats.loss
        s.diverge_streak = s.diverge_streak + 1 if ahead > c.anomaly_divergence * s.best_mean else 0
        if s.diverge_streak >= _STREAK or stats.loss > 4 * c.anomaly_divergence * s.best_mean:
            out.append(
                self._anomaly("divergence", stats.step, f"running loss {ahead:.4g} vs best {s.best_mean:.4g}")
            )
        elif stats.past_warmup and stats.step - s.progress_step >= c.anomaly_no_progress:
            if s.loss_mean > 0.99 * s.progress_ref:
                out.append(
                    self._anomaly(
                        "no_progress",
                        stats.step,
                        f"running loss {s.loss_mean:.4g} not 1% below {s.progress_ref:.4g} "
                        f"after {stats.step - s.progress_step} steps",
                    )
                )
            s.progress_ref, s.progress_step = s.loss_mean, stats.step
        return out

    def _grad_checks(self, stats: StepStats) -> list[Anomaly]:
        s, c = self.s, self.config
        out: list[Anomaly] = []
        s.vanish_streak = s.vanish_streak + 1 if stats.grad_norm < c.anomaly_vanishing_grad else 0
        if s.vanish_streak >= _STREAK:
            out.append(self._anomaly("vanishing_grad", stats.step, f"gradient norm {stats.grad_norm:.3g}"))
        if s.n >= _WARM and stats.grad_norm > c.anomaly_grad_spike * max(s.grad_mean, 1e-12):
            out.append(
                self._anomaly(
                    "grad_spike",
                    stats.step,
                    f"gradient norm {stats.grad_norm:.4g} vs running {s.grad_mean:.4g}",
                )
            )
        return out

    def _learn(self, stats: StepStats) -> None:
        s = self.s
        if s.n == 0:
            s.loss_mean, s.grad_mean = stats.loss, stats.grad_norm
        else:
            delta = stats.loss - s.loss_mean
            s.loss_mean += _ALPHA * delta
            s.loss_var = (1 - _ALPHA) * (s.loss_var + _ALPHA * delta * delta)
            s.grad_mean += _ALPHA * (stats.grad_norm - s.grad_mean)
        s.n += 1
        if s.n >= _WARM:
            s.best_mean = min(s.best_mean, s.loss_mean)
        if s.n == _WARM:
            s.progress_ref, s.progress_step = s.loss_mean, stats.step

    # --- latent and discriminator ------------------------------------------------------------------------

    def _model_checks(self, stats: StepStats) -> list[Anomaly]:
        s, c = self.s, self.config
        out: list[Anomaly] = []
        if stats.kl is not None and stats.beta is not None and stats.beta > 0:
            s.kl_streak = s.kl_streak + 1 if stats.kl < c.anomaly_kl_floor else 0
            if s.kl_streak >= _COLLAPSE:
                out.append(
                    self._anomaly("posterior_collapse", stats.step, f"KL {stats.kl:.3g} nats per token")
                )
        if stats.disc_loss is not None and math.isfinite(stats.disc_loss):
            s.disc_streak = s.disc_streak + 1 if stats.disc_loss < 0.05 else 0
            if s.disc_streak >= _COLLAPSE:
                out.append(
                    self._anomaly(
                        "discriminator_collapse",
                        stats.step,
                        f"discriminator loss {stats.disc_loss:.3g}: it wins outright",
                    )
                )
        return out

    # --- machine -----------------------------------------------------------------------------------------

    def _system_checks(self, stats: StepStats) -> list[Anomaly]:
        s, c = self.s, self.config
        out: list[Anomaly] = []
        if stats.seq_len is not None and stats.seq_len != s.seq_len:
            # A new sequence length (a curriculum stage) changes speed and memory by design: both
            # are judged against what the new length does, learnt afresh.
            s.seq_len, s.speed_n, s.memory_base = stats.seq_len, 0, 0
        if stats.wait_s is not None and stats.wait_s > c.anomaly_stall_s:
            out.append(self._anomaly("loader_stall", stats.step, f"waited {stats.wait_s:.1f} s for a batch"))
        if stats.tokens_per_s is not None and stats.tokens_per_s > 0:
            if s.speed_n >= _WARM and stats.tokens_per_s < c.anomaly_throughput_drop * s.speed_mean:
                out.append(
                    self._anomaly(
                        "throughput_drop",
                        stats.step,
                        f"{stats.tokens_per_s:.0f} tokens/s vs running {s.speed_mean:.0f}",
                    )
                )
            s.speed_mean = (
                stats.tokens_per_s
                if s.speed_n == 0
                else s.speed_mean + _ALPHA * (stats.tokens_per_s - s.speed_mean)
            )
            s.speed_n += 1
        if stats.memory_bytes:
            if s.speed_n == _WARM or not s.memory_base:
                s.memory_base = stats.memory_bytes
            elif stats.memory_bytes > c.anomaly_memory_growth * s.memory_base:
                out.append(
                    self._anomaly(
                        "memory_growth",
                        stats.step,
                        f"{stats.memory_bytes >> 20} MiB in use vs {s.memory_base >> 20} MiB before",
                    )
                )
                s.memory_base = stats.memory_bytes  # warn again only if it keeps growing
        return out

    # --- reporting ---------------------------------------------------------------------------------------

    def _anomaly(self, kind: str, step: int, message: str) -> Anomaly:
        return Anomaly(kind, step, message, SUGGESTIONS[kind])

    def _may_warn(self, anomaly: Anomaly) -> bool:
        last = self.s.last_warned.get(anomaly.kind)
        if last is not None and anomaly.step - last < COOLDOWN:
            return False
        self.s.last_warned[anomaly.kind] = anomaly.step
        return True
