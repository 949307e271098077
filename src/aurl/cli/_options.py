"""Option and argument types shared by the commands, defined once as `Annotated` aliases.

A setting's flag takes its help text from the field's description in aurl.config, so `--help`,
the config file and docs/config.md say the same thing. Flags that mirror a setting default to None:
an option the user did not give must not override the environment or the config file.
"""

from pathlib import Path
from typing import Annotated

import typer
from pydantic import BaseModel

from aurl.config import MidiConfig, PreprocessConfig


def _describe(section: type[BaseModel], name: str) -> str:
    return section.model_fields[name].description or ""


JsonFlag = Annotated[
    bool,
    typer.Option("--json", help="Print the result as one JSON document on stdout, and nothing else there."),
]
ConfigFile = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Settings file (TOML or YAML); flags override the environment, which overrides the file.",
        show_default=False,
    ),
]
MidiInputs = Annotated[
    list[Path] | None,
    typer.Argument(
        metavar="INPUT",
        help="MIDI files or folders, walked recursively for .mid .midi .kar .rmi files "
        "(default: the bundled Bach chorales).",
        show_default=False,
    ),
]
OutDir = Annotated[
    Path | None,
    typer.Option("--out", "-o", help=_describe(PreprocessConfig, "out_dir"), show_default=False),
]
Workers = Annotated[
    int | None,
    typer.Option("--workers", "-j", min=1, help=_describe(PreprocessConfig, "workers"), show_default=False),
]
SustainPedal = Annotated[
    bool | None,
    typer.Option(
        "--sustain-pedal/--no-sustain-pedal", help=_describe(MidiConfig, "sustain_pedal"), show_default=False
    ),
]
