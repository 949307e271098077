"""`aurl sample`: new music from a model (the bundled one by default) as MIDI or MusicXML files."""

from pathlib import Path
from typing import Annotated

import typer

from aurl.cli._options import ConfigFile, JsonFlag
from aurl.cli._output import emit, progress_bar
from aurl.config import SampleConfig, load_settings
from aurl.errors import ConfigError

HELP = (
    "Write new music with a trained model: the bundled one unless --checkpoint names another.\n\n"
    "Sampling is batched (--num), KV-cached and shaped by temperature, top-k, top-p and a repetition "
    "penalty, or replaced by beam search (--beam). The token grammar always holds, and --key, --scale, "
    "--pitch-range, --max-polyphony, --tempo, --time-signature and --program constrain the notes before "
    "each token is drawn. --primer continues a piece; --reconstruct and --interpolate need a vae or "
    "vae_gan model. The same --seed and settings give byte-identical files; the seed, settings, "
    "checkpoint hash and aurl version are written into every file.\n\n"
    "Exit code 0 on success, 1 when a model or input file cannot be used, 2 for a bad flag or setting."
)
EXAMPLE = (
    "Example: aurl sample --out song.mid --key 'D minor' --bars 16 --seed 7; "
    "aurl sample -n 8 --out songs/ --temperature 0.9 --top-p 0.95 --json"
)


def _describe(name: str) -> str:
    return SampleConfig.model_fields[name].description or ""


def _option(*names: str, field: str, **extra: object) -> typer.models.OptionInfo:
    return typer.Option(*names, help=_describe(field), show_default=False, **extra)  # type: ignore[arg-type]


Checkpoint = Annotated[str | None, _option("--checkpoint", "-m", field="checkpoint", metavar="PATH")]
Out = Annotated[
    Path | None,
    typer.Option(
        "--out",
        "-o",
        help="A file for one piece, else a folder (song-000.mid, ...); default song.mid, or songs/.",
        show_default=False,
    ),
]
Num = Annotated[int | None, _option("--num", "-n", field="num", min=1)]
Seed = Annotated[int | None, _option("--seed", "-s", field="seed", min=0)]
Temperature = Annotated[float | None, _option("--temperature", "-t", field="temperature")]
TopK = Annotated[int | None, _option("--top-k", field="top_k", min=0)]
TopP = Annotated[float | None, _option("--top-p", field="top_p")]
Timing = Annotated[str | None, _option("--timing", field="timing", metavar="shaped|model")]
Repetition = Annotated[float | None, _option("--repetition-penalty", field="repetition_penalty")]
Beam = Annotated[int | None, _option("--beam", field="beam", min=1)]
LengthPenalty = Annotated[float | None, _option("--length-penalty", field="length_penalty")]
MaxTokens = Annotated[int | None, _option("--max-tokens", field="max_tokens")]
Bars = Annotated[int | None, _option("--bars", field="bars")]
Length = Annotated[int | None, _option("--length", field="length", metavar="TOKENS")]
Seconds = Annotated[float | None, _option("--seconds", field="seconds")]
Key = Annotated[str | None, _option("--key", field="key")]
Scale = Annotated[str | None, _option("--scale", field="scale")]
PitchRange = Annotated[str | None, _option("--pitch-range", field="pitch_range", metavar="LOW-HIGH")]
Polyphony = Annotated[int | None, _option("--max-polyphony", field="max_polyphony")]
VoicePolyphony = Annotated[int | None, _option("--max-voice-polyphony", field="max_voice_polyphony")]
Tempo = Annotated[float | None, _option("--tempo", field="tempo", metavar="BPM")]
TimeSignature = Annotated[str | None, _option("--time-signature", field="time_signature", metavar="N/D")]
Program = Annotated[
    list[str] | None,
    typer.Option(
        "--program",
        help="General MIDI program (0-127, or 'drums') new notes may use; repeat for several.",
        show_default=False,
    ),
]
Primer = Annotated[Path | None, typer.Option("--primer", help="A MIDI file to continue.", show_default=False)]
Interpolate = Annotated[
    tuple[Path, Path] | None,
    typer.Option(
        "--interpolate",
        help="Two MIDI files: --steps pieces along the path between their latents (vae models).",
        metavar="A.mid B.mid",
        show_default=False,
    ),
]
Steps = Annotated[int | None, _option("--steps", field="steps")]
Reconstruct = Annotated[
    Path | None,
    typer.Option(
        "--reconstruct", help="A MIDI file to encode and decode again (vae models).", show_default=False
    ),
]
Format = Annotated[str | None, _option("--format", "-f", field="format", metavar="midi|musicxml")]
Device = Annotated[str | None, _option("--device", field="device")]
Precision = Annotated[str | None, _option("--precision", field="precision", metavar="float32|float16")]
Compile = Annotated[
    bool | None,
    typer.Option("--compile/--no-compile", help=_describe("compile"), show_default=False),
]


def _programs(values: list[str] | None) -> tuple[int, ...] | None:
    if not values:
        return None
    programs = []
    for value in values:
        text = value.strip().lower()
        if text in ("drums", "drum", "percussion"):
            programs.append(128)
        elif text.isdigit():
            programs.append(int(text))
        else:
            raise ConfigError(f"--program '{value}' is not a General MIDI program (0-127) or 'drums'")
    return tuple(programs)


def sample_command(
    checkpoint: Checkpoint = None,
    out: Out = None,
    num: Num = None,
    seed: Seed = None,
    temperature: Temperature = None,
    top_k: TopK = None,
    top_p: TopP = None,
    timing: Timing = None,
    repetition_penalty: Repetition = None,
    beam: Beam = None,
    length_penalty: LengthPenalty = None,
    max_tokens: MaxTokens = None,
    bars: Bars = None,
    length: Length = None,
    seconds: Seconds = None,
    key: Key = None,
    scale: Scale = None,
    pitch_range: PitchRange = None,
    max_polyphony: Polyphony = None,
    max_voice_polyphony: VoicePolyphony = None,
    tempo: Tempo = None,
    time_signature: TimeSignature = None,
    program: Program = None,
    primer: Primer = None,
    interpolate: Interpolate = None,
    steps: Steps = None,
    reconstruct: Reconstruct = None,
    fmt: Format = None,
    device: Device = None,
    precision: Precision = None,
    compile: Compile = None,
    config: ConfigFile = None,
    as_json: JsonFlag = False,
) -> None:
    """Write new music with a trained model (the bundled one by default)."""
    from aurl.sample import sample  # torch loads only when the command runs

    flags = {
        "checkpoint": checkpoint, "num": num, "seed": seed, "temperature": temperature, "top_k": top_k,
        "top_p": top_p, "timing": timing, "repetition_penalty": repetition_penalty, "beam": beam,
        "length_penalty": length_penalty, "max_tokens": max_tokens, "bars": bars, "length": length,
        "seconds": seconds, "key": key, "scale": scale, "pitch_range": pitch_range,
        "max_polyphony": max_polyphony, "max_voice_polyphony": max_voice_polyphony, "tempo": tempo,
        "time_signature": time_signature,
        "programs": _programs(program), "steps": steps, "format": fmt, "device": device,
        "precision": precision, "compile": compile,
    }  # fmt: skip
    settings = load_settings(config, {f"sample.{name}": value for name, value in flags.items()})
    decoder = _exported_decoder(settings.sample.checkpoint)
    with progress_bar("sampling") as on_progress:
        result = sample(
            settings, out=out, primer=primer, interpolate_between=interpolate, reconstruct=reconstruct,
            decoder=decoder, on_progress=on_progress,
        )  # fmt: skip
    emit(result, as_json=as_json)


def _exported_decoder(checkpoint: str):  # noqa: ANN202 - the Decoder type loads torch
    """An exported model (ONNX, int8, half precision) runs through aurl.export's decoder; None otherwise."""
    if checkpoint == "bundled" or not Path(checkpoint).is_file():
        return None  # the library resolves (or refuses) it
    from aurl.export import is_export, load_decoder

    return load_decoder(checkpoint) if is_export(checkpoint) else None
