"""`aurl resume`: continue a run from its newest good checkpoint, exactly where it stopped."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aurl.cli._options import JsonFlag
from aurl.cli._output import emit
from aurl.cli.train import MaxSteps, is_main_process, training_display

HELP = (
    "Continue a run from its newest checkpoint that passes its checksums (a corrupt one is reported "
    "and the previous one used). The run's config.json gives every setting; --max-steps moves the "
    "run's last step. On the CPU the result is bit for bit that of a run never interrupted."
)
EXAMPLE = "Example: aurl resume runs/vae-gan --max-steps 40000"

RunFolder = Annotated[
    Path,
    typer.Argument(metavar="RUN_DIR", help="The run folder `aurl train` wrote.", show_default=False),
]


def resume_command(run_dir: RunFolder, max_steps: MaxSteps = None, as_json: JsonFlag = False) -> None:
    """Continue a run from its newest good checkpoint."""
    from aurl.train import resume  # torch loads only when the command runs

    with training_display() as (on_event, _):
        result = resume(run_dir, max_steps=max_steps, on_event=on_event)
    if is_main_process():
        emit(result, as_json=as_json)
