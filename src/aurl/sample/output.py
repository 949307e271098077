"""Where generated pieces go and how they are written: MIDI, or MusicXML through music21.

One piece goes to `--out FILE`; several go into `--out FOLDER` as song-000.mid, song-001.mid, ...
The sampling metadata (seed, settings, checkpoint hash, aurl version) travels inside each file:
as a MIDI text meta event, or as the MusicXML description.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aurl.atomic import atomic_path
from aurl.errors import ConfigError, MidiError
from aurl.midi import Score, midi_bytes, write_midi

SUFFIXES = {"midi": ".mid", "musicxml": ".musicxml"}
_FILE_SUFFIXES = {".mid", ".midi", ".musicxml", ".xml", ".mxl"}


def plan_outputs(out: str | Path | None, count: int, fmt: str, stem: str = "song") -> list[Path]:
    """The files `count` pieces will be written to (folders are made when the files are written).

    Args:
        out: a file (one piece) or a folder; None means `song.mid` (one piece) or the folder
            `songs` in the working directory.
        count: pieces to write.
        fmt: "midi" or "musicxml" (the suffix of generated names).
        stem: name of numbered files, e.g. "song" -> song-000.mid.

    Raises:
        ConfigError: a file name for several pieces, a suffix that contradicts the format, or
            MusicXML without music21 (checked here, before any music is generated).
    """
    if fmt == "musicxml":
        _music21()
    suffix = SUFFIXES[fmt]
    if out is None:
        out = Path(f"{stem}{suffix}") if count == 1 else Path(f"{stem}s")
    out = Path(out)
    if out.suffix.lower() in _FILE_SUFFIXES and not out.is_dir():
        if count > 1:
            raise ConfigError(f"--out '{out}' names one file but {count} pieces are written; give a folder")
        if (out.suffix.lower() in (".mid", ".midi")) != (fmt == "midi"):
            raise ConfigError(f"--out '{out}' does not fit --format {fmt}; use a {suffix} file name")
        return [out]
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out '{out}' is a file, not a folder; give a folder for {count} pieces")
    return [out / f"{stem}-{i:03d}{suffix}" for i in range(count)]


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"--out: cannot create the folder '{folder}' ({error.strerror or error})") from None


def write_piece(score: Score, path: Path, fmt: str, text: str) -> None:
    """Write `score` to `path` as MIDI or MusicXML, with `text` (JSON metadata) inside.

    Raises:
        MidiError: the file cannot be written.
        ConfigError: the folder cannot be made, or MusicXML without music21.
    """
    _make_folder(path.parent)
    if fmt == "midi":
        write_midi(score, path, text=text)
    else:
        _write_musicxml(score, path, text)


def _music21() -> Any:
    try:
        import music21
    except ImportError:
        raise ConfigError(
            "--format musicxml needs music21, which is not installed; run: pip install 'aurl[musicxml]'"
        ) from None
    return music21


def _write_musicxml(score: Score, path: Path, text: str) -> None:
    music21 = _music21()
    data = midi_bytes(score, text)
    stream = music21.converter.parseData(data, format="midi", forceSource=True)
    stream.metadata = stream.metadata or music21.metadata.Metadata()
    stream.metadata.add("description", text)
    stream.metadata.software = ["aurl"]
    try:
        with atomic_path(path, suffix=".musicxml") as tmp:
            stream.write("musicxml", fp=str(tmp))
    except OSError as error:
        raise MidiError(f"{path}: cannot write the file ({error.strerror or error})") from None
