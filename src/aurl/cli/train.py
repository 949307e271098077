"""`aurl train`: train a model on the bundled chorales or your MIDI, with a live display of progress."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from aurl.cli._options import ConfigFile, JsonFlag
from aurl.cli._output import emit, session
from aurl.config import DataConfig, ModelConfig, TrainConfig, load_settings

if TYPE_CHECKING:
    from aurl.train import TrainEvent

HELP = (
    "Train a model and write a run folder: config.json, vocab.json, metrics.jsonl, step-N/ checkpoints "
    "and model.safetensors (the best weights, what `aurl sample` takes).\n\n"
    "Without --data it trains on the bundled Bach chorales. Ctrl-C writes a checkpoint and exits with "
    "code 130; `aurl resume RUN_DIR` continues exactly where it stopped. Under `torchrun "
    "--nproc-per-node N -m aurl train ...` it trains on N processes (DDP)."
)
EXAMPLE = (
    "Example: aurl train --mode vae_gan --preset small --data my_midi/ --run-dir runs/vae-gan "
    "--max-steps 20000"
)


def _describe(section: type, name: str) -> str:
    return section.model_fields[name].description or ""  # type: ignore[attr-defined, no-any-return]


Mode = Annotated[
    str | None,
    typer.Option(
        "--mode",
        "-m",
        metavar="[transformer|vae|vae_gan]",
        help=_describe(ModelConfig, "mode"),
        show_default=False,
    ),
]
Preset = Annotated[
    str | None,
    typer.Option(
        "--preset",
        "-p",
        metavar="[tiny|small|base|full]",
        help="Model size: tiny, small, base or full; model settings you give yourself win over it "
        "(default: the model section of the settings, i.e. full).",
        show_default=False,
    ),
]
DataPaths = Annotated[
    list[Path] | None,
    typer.Option(
        "--data", "-d", help=_describe(DataConfig, "data") + " Repeat for several.", show_default=False
    ),
]
RunDir = Annotated[
    Path | None, typer.Option("--run-dir", "-o", help=_describe(TrainConfig, "run_dir"), show_default=False)
]
MaxSteps = Annotated[
    int | None,
    typer.Option("--max-steps", min=1, help=_describe(TrainConfig, "max_steps"), show_default=False),
]
Epochs = Annotated[
    int | None, typer.Option("--epochs", min=1, help=_describe(TrainConfig, "epochs"), show_default=False)
]
BatchSize = Annotated[
    int | None,
    typer.Option("--batch-size", "-b", min=1, help=_describe(DataConfig, "batch_size"), show_default=False),
]
LearningRate = Annotated[
    float | None, typer.Option("--lr", min=0.0, help=_describe(TrainConfig, "lr"), show_default=False)
]
SeqLen = Annotated[
    int | None, typer.Option("--seq-len", min=8, help=_describe(DataConfig, "seq_len"), show_default=False)
]
CheckpointEvery = Annotated[
    int | None,
    typer.Option(
        "--checkpoint-every", min=1, help=_describe(TrainConfig, "checkpoint_every"), show_default=False
    ),
]
EvalEvery = Annotated[
    int | None,
    typer.Option("--eval-every", min=1, help=_describe(TrainConfig, "eval_every"), show_default=False),
]
Seed = Annotated[
    int | None, typer.Option("--seed", min=0, help=_describe(TrainConfig, "seed"), show_default=False)
]
Device = Annotated[
    str | None,
    typer.Option(
        "--device", metavar="[auto|cpu|cuda|mps]", help=_describe(TrainConfig, "device"), show_default=False
    ),
]
Precision = Annotated[
    str | None,
    typer.Option(
        "--precision",
        metavar="[fp32|bf16|fp16]",
        help=_describe(TrainConfig, "precision"),
        show_default=False,
    ),
]
Compile = Annotated[
    bool | None,
    typer.Option("--compile/--no-compile", help=_describe(TrainConfig, "compile"), show_default=False),
]
AverageBest = Annotated[
    int | None,
    typer.Option("--average-best", min=0, help=_describe(TrainConfig, "average_best"), show_default=False),
]
Name = Annotated[str | None, typer.Option("--name", help=_describe(TrainConfig, "name"), show_default=False)]


def train_command(
    mode: Mode = None,
    preset: Preset = None,
    config: ConfigFile = None,
    data: DataPaths = None,
    run_dir: RunDir = None,
    max_steps: MaxSteps = None,
    epochs: Epochs = None,
    batch_size: BatchSize = None,
    lr: LearningRate = None,
    seq_len: SeqLen = None,
    checkpoint_every: CheckpointEvery = None,
    eval_every: EvalEvery = None,
    seed: Seed = None,
    device: Device = None,
    precision: Precision = None,
    compile: Compile = None,
    average_best: AverageBest = None,
    name: Name = None,
    as_json: JsonFlag = False,
) -> None:
    """Train a model and write a run folder."""
    from aurl.train import train, with_preset  # torch loads only when the command runs

    overrides: dict[str, Any] = {
        "model.mode": mode, "data.data": data or None, "train.run_dir": run_dir, "train.max_steps": max_steps,
        "train.epochs": epochs, "data.batch_size": batch_size, "train.lr": lr, "data.seq_len": seq_len,
        "train.checkpoint_every": checkpoint_every, "train.eval_every": eval_every, "train.seed": seed,
        "train.device": device, "train.precision": precision, "train.compile": compile,
        "train.average_best": average_best, "train.name": name,
    }  # fmt: skip
    if average_best:  # the averaged checkpoints must stay on disk
        overrides["train.keep_best"] = max(average_best, 2)
    settings = with_preset(load_settings(config, overrides), preset)
    with training_display() as (on_event, on_progress):
        result = train(settings, on_event=on_event, on_progress=on_progress)
    if is_main_process():
        emit(result, as_json=as_json)


def is_main_process() -> bool:
    """False on ranks other than 0 of a torchrun launch: only rank 0 prints the result."""
    return os.environ.get("RANK", "0") in ("", "0")


@contextmanager
def training_display() -> Iterator[
    tuple[Callable[[TrainEvent], None] | None, Callable[[int, int], None] | None]
]:
    """One live display on a terminal: a preprocessing bar, then the training bar with step, loss
    terms, lr, tokens/s and ETA. Elsewhere (a pipe, --quiet, ranks other than 0) plain log lines.

    Yields:
        (on_event, on_progress) to pass to `train`; both None when log lines report progress.
    """
    console = session.stderr
    if session.quiet or not console.is_terminal or not is_main_process():
        yield None, None
        return
    progress = Progress(
        TextColumn("[bold]{task.description}[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        redirect_stdout=False,  # stdout is for results only
        redirect_stderr=False,
    )
    steps_log = logging.getLogger("aurl.train.progress")
    level = steps_log.level
    steps_log.setLevel(logging.WARNING)  # the display shows what these lines would say
    tasks: dict[str, TaskID] = {}

    def task(name: str) -> TaskID:
        if name not in tasks:
            tasks[name] = progress.add_task(name, total=None, info="")
        return tasks[name]

    def on_progress(done: int, total: int) -> None:
        progress.update(task("preprocessing"), completed=done, total=total)

    def on_event(event: TrainEvent) -> None:
        if event.kind in ("start", "progress", "step"):
            info = _info(event) if event.kind != "start" else "starting"
            progress.update(
                task("training"), completed=event.step, total=event.data.get("total_steps"), info=info
            )

    try:
        with progress:
            yield on_event, on_progress
    finally:
        steps_log.setLevel(level)


def _info(event: TrainEvent) -> str:
    d = event.data
    terms = " ".join(
        f"{k} {d[k]:.3f}" for k in ("loss", "recon", "kl", "adv", "disc_loss") if k in d and d[k]
    )
    return f"{terms}  lr {d.get('lr', 0.0):.2e}  {d.get('tokens_per_s', 0.0):,.0f} tok/s"
