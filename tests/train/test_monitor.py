"""Monitoring: metrics.jsonl rows, TensorBoard when it imports, log lines, and the quality metrics."""

from __future__ import annotations

import json
import math
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aurl.midi import read_midi
from aurl.tokens import encode
from aurl.train.monitor import Monitor, TrainEvent, format_step, truncate_metrics
from aurl.train.quality import QUALITY_METRICS, piece_quality, repetition_rate, summarize


def test_rows_go_to_metrics_jsonl_with_nan_as_null(tmp_path: Path) -> None:
    seen: list[TrainEvent] = []
    monitor = Monitor(tmp_path, seen.append, write=True)
    monitor.emit(TrainEvent("step", 1, {"loss": 2.5, "lr": 1e-3, "kl": math.nan}))
    monitor.emit(TrainEvent("eval", 1, {"val_loss": 2.0, "val_perplexity": 7.4, "val_bits_per_token": 2.9}))
    monitor.emit(TrainEvent("checkpoint", 1, {"path": "x"}))  # an event, not a metrics row
    monitor.close()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows == [
        {"kind": "train", "step": 1, "loss": 2.5, "lr": 1e-3, "kl": None},
        {"kind": "val", "step": 1, "val_loss": 2.0, "val_perplexity": 7.4, "val_bits_per_token": 2.9},
    ]
    assert [e.kind for e in seen] == ["step", "eval", "checkpoint"]


def test_other_ranks_write_nothing(tmp_path: Path) -> None:
    monitor = Monitor(tmp_path, None, write=False)
    monitor.emit(TrainEvent("step", 1, {"loss": 1.0}))
    monitor.close()
    assert not (tmp_path / "metrics.jsonl").exists()


def test_tensorboard_scalars_when_it_imports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    written: list[tuple[str, float, int]] = []

    class Writer:
        def __init__(self, log_dir: str) -> None:
            assert Path(log_dir) == tmp_path / "tensorboard"

        def add_scalar(self, tag: str, value: float, step: int) -> None:
            written.append((tag, value, step))

        def close(self) -> None:
            written.append(("closed", 0.0, 0))

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=Writer))
    monitor = Monitor(tmp_path, None, write=True)
    monitor.emit(TrainEvent("step", 3, {"loss": 2.0, "epoch": 1, "note": "text", "kl": math.inf}))
    monitor.close()
    assert written == [("train/loss", 2.0, 3), ("train/epoch", 1, 3), ("closed", 0.0, 0)]


def test_metrics_past_the_resumed_step_are_dropped(tmp_path: Path) -> None:
    lines = [json.dumps({"kind": "train", "step": s}) for s in range(1, 8)] + [
        '{"kind": "tr'
    ]  # torn by a kill
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    truncate_metrics(tmp_path, 4)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]


def test_a_step_line_names_step_losses_lr_speed_and_eta() -> None:
    event = TrainEvent(
        "step",
        12,
        {"loss": 2.0, "recon": 1.5, "lr": 3e-4, "tokens_per_s": 12345.6, "eta_s": 3725.0, "total_steps": 100},
    )
    line = format_step(event)
    assert line == "step 12/100: loss 2.0000 recon 1.5000, lr 3.00e-04, 12,346 tokens/s, ETA 1:02:05"


@given(st.lists(st.integers(40, 80), max_size=40))
def test_repetition_rate_is_a_share_and_sees_transposed_repeats(pitches: list[int]) -> None:
    rate = repetition_rate(np.array(pitches))
    if len(pitches) < 4:
        assert math.isnan(rate)
    else:
        assert 0.0 <= rate < 1.0
    motif = np.array([60, 62, 64, 60, 67])
    repeated = np.concatenate([motif, motif + 5, motif - 3])
    assert repetition_rate(repeated) > repetition_rate(motif) == 0.0


def test_quality_of_a_real_chorale(chorale_paths: list[Path]) -> None:
    ids = encode(read_midi(chorale_paths[0]))
    quality = piece_quality(ids, validity=1.0)
    assert set(quality) == set(QUALITY_METRICS)
    assert quality["token_validity"] == 1.0 and 12 <= quality["pitch_range"] <= 48
    assert 2.0 < quality["pitch_class_entropy"] <= math.log2(12) and quality["scale_consistency"] > 0.85
    assert 2.0 <= quality["polyphony"] <= 6.0 and quality["empty_beat_rate"] < 0.1
    assert 0.0 < quality["mean_ioi"] <= 1.0 and 0.0 <= quality["repetition_rate"] < 1.0


def test_summary_skips_undefined_values() -> None:
    summary = summarize([{"pitch_range": math.nan}, {"pitch_range": 10.0}, {}])
    assert summary["pitch_range"] == 10.0 and math.isnan(summary["polyphony"])
