"""What a run reports: events for a caller's display, log lines, metrics.jsonl and TensorBoard files.

Every report is a `TrainEvent` (kind, step, data). The trainer hands each to `Monitor.emit`, which
passes it to the caller's `on_event` (the CLI draws a live display from them), writes a plain log
line, appends a row to metrics.jsonl and, when `torch.utils.tensorboard` imports (tensorboard is
installed), writes scalars to TensorBoard event files under run_dir/tensorboard. Only rank 0
writes files. Step lines go to the `aurl.train.progress` logger, so a display that shows them
itself can silence that logger alone.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aurl.train.checkpoint import write_json_atomic

log = logging.getLogger("aurl.train")
progress_log = logging.getLogger("aurl.train.progress")

METRICS_FILE = "metrics.jsonl"
# Event kinds and the metrics.jsonl rows they make.
# "progress" comes every step for live displays; "step" every train.log_every steps (logged, written).
EVENT_KINDS = ("start", "progress", "step", "eval", "quality", "checkpoint", "anomaly", "recovery", "end")
_ROWS = {"step": "train", "eval": "val", "quality": "quality", "anomaly": "anomaly", "recovery": "recovery"}


@dataclass(frozen=True)
class TrainEvent:
    """One report of a run: `kind` (one of EVENT_KINDS), the optimizer step, and its values."""

    kind: str
    step: int
    data: dict[str, Any] = field(default_factory=dict)


EventCallback = Callable[[TrainEvent], None]


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: they become None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def truncate_metrics(run_dir: Path, step: int) -> None:
    """Drop metrics.jsonl rows after `step`: those of a killed run beyond the checkpoint resumed from."""
    path = run_dir / METRICS_FILE
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:  # a row torn by a kill
            continue
        if int(row.get("step", 0)) <= step:
            kept.append(line)
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")
    tmp.replace(path)


class Monitor:
    """Routes events to the callback, the log, metrics.jsonl and TensorBoard.

    Args:
        run_dir: the run folder (metrics.jsonl and tensorboard/ go here).
        on_event: the caller's callback, or None.
        write: False on ranks other than 0: events still reach `on_event`; nothing is logged or written.
    """

    def __init__(self, run_dir: Path, on_event: EventCallback | None, *, write: bool) -> None:
        self.run_dir, self.on_event, self.write = run_dir, on_event, write
        self._metrics = (run_dir / METRICS_FILE).open("a", encoding="utf-8") if write else None
        self._board = _tensorboard(run_dir / "tensorboard") if write else None

    def emit(self, event: TrainEvent) -> None:
        """Report one event everywhere it belongs."""
        if self.on_event is not None:
            self.on_event(event)
        if not self.write:  # other ranks of a DDP run stay silent: rank 0 reports for all
            return
        self._log(event)
        row_kind = _ROWS.get(event.kind)
        if row_kind is not None and self._metrics is not None:
            row = {"kind": row_kind, "step": event.step, **_finite(event.data)}
            self._metrics.write(json.dumps(row, sort_keys=True) + "\n")
            self._metrics.flush()
        if self._board is not None and row_kind in ("train", "val", "quality"):
            for key, value in event.data.items():
                if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
                    self._board.add_scalar(f"{row_kind}/{key}", value, event.step)

    def close(self) -> None:
        """Flush and close the files."""
        if self._metrics is not None:
            self._metrics.close()
            self._metrics = None
        if self._board is not None:
            self._board.close()
            self._board = None

    def _log(self, event: TrainEvent) -> None:
        d = event.data
        if event.kind == "step":
            progress_log.info(format_step(event))
        elif event.kind == "eval":
            log.info(
                "step %d: validation loss %.4f, perplexity %.2f, %.3f bits per token",
                event.step, d["val_loss"], d["val_perplexity"], d["val_bits_per_token"],
            )  # fmt: skip
        elif event.kind == "quality":
            shown = ", ".join(f"{k} {v:.3g}" for k, v in d.items() if isinstance(v, float))
            log.info("step %d: samples: %s", event.step, shown)
        elif event.kind == "checkpoint":
            log.info("step %d: checkpoint %s", event.step, d["path"])
        elif event.kind == "anomaly":
            log.warning("step %d: %s: %s; %s", event.step, d["kind"], d["message"], d["suggestion"])
        elif event.kind == "recovery":
            log.warning("step %d: %s", event.step, d["message"])
        elif event.kind == "start":
            log.info("%s", d.get("description", "training"))
        elif event.kind == "end":
            log.info("step %d: training ended (%s)", event.step, d.get("stopped", "done"))


def format_step(event: TrainEvent) -> str:
    """The plain log line of a step event: step, loss terms, lr, tokens/s, ETA."""
    d = event.data
    terms = " ".join(f"{k} {d[k]:.4f}" for k in ("loss", "recon", "kl", "adv", "disc_loss") if k in d)
    eta = d.get("eta_s")
    eta_text = f", ETA {_clock(eta)}" if eta is not None and math.isfinite(eta) else ""
    return (
        f"step {event.step}/{d.get('total_steps', '?')}: {terms}, lr {d.get('lr', 0.0):.2e}, "
        f"{d.get('tokens_per_s', 0.0):,.0f} tokens/s{eta_text}"
    )


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def _tensorboard(folder: Path) -> Any:
    """A SummaryWriter when tensorboard is installed; None (silently) otherwise."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    try:
        return SummaryWriter(log_dir=str(folder))
    except Exception as error:  # a broken tensorboard install must not stop training
        log.debug("tensorboard unavailable: %s", error)
        return None


def write_run_json(path: Path, data: Any) -> None:
    """Write a JSON file of the run atomically (config.json, vocab.json)."""
    write_json_atomic(path, _finite(data))
