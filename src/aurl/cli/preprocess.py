"""`aurl preprocess`: MIDI files in, the token cache and its manifest out."""

from aurl.cli._options import ConfigFile, JsonFlag, MidiInputs, OutDir, SustainPedal, Workers
from aurl.cli._output import conclude, emit, progress_bar
from aurl.config import load_settings

HELP = (
    "Read MIDI files into a content-addressed token cache; DIR/manifest.json lists every file.\n\n"
    "Without INPUT it reads the bundled Bach chorales. A rerun reads only new or changed files.\n\n"
    "Exit code 0 when every file was read, 3 when some were rejected (each listed with its reason), "
    "1 when none could be read."
)
EXAMPLE = "Example: aurl preprocess my_midi/ more.mid --out data/tokens --workers 4 --json"


def preprocess_command(
    inputs: MidiInputs = None,
    out: OutDir = None,
    workers: Workers = None,
    sustain_pedal: SustainPedal = None,
    config: ConfigFile = None,
    as_json: JsonFlag = False,
) -> None:
    """Read MIDI files into a content-addressed token cache; DIR/manifest.json lists every file."""
    # The library loads with the command, not with `aurl --help`.
    from aurl.data.corpus import bach_dir
    from aurl.data.preprocess import preprocess

    settings = load_settings(
        config,
        {"preprocess.out_dir": out, "preprocess.workers": workers, "midi.sustain_pedal": sustain_pedal},
    )
    with progress_bar("preprocessing") as on_progress:
        result = preprocess(
            inputs or [bach_dir()],
            settings.preprocess.out_dir,
            workers=settings.preprocess.workers,
            sustain_pedal=settings.midi.sustain_pedal,
            on_progress=on_progress,
        )
    emit(result, as_json=as_json)
    conclude(ok=result.files_ok, rejected=result.files_rejected)
