"""MIDI files <-> Score: a fault-tolerant reader, a type-1 writer, validation and metadata.

    score = read_midi("song.mid")            # or read_midi_bytes(data, name)
    problems = validate(score)               # [] when the score is fine
    info = metadata(score)                   # JSON-able: durations, maps, instruments, repairs
    write_midi(score, "copy.mid")            # type 1, atomic; midi_bytes(score) gives the bytes

Nothing here imports mido, miditoolkit or torch: the reader is our own byte-level parser.
"""

from aurl.midi.read import read_midi, read_midi_bytes
from aurl.midi.score import KeySignatureMap, Score, TempoMap, TimeSignatureMap
from aurl.midi.validate import metadata, validate
from aurl.midi.write import midi_bytes, write_midi

__all__ = [
    "KeySignatureMap",
    "Score",
    "TempoMap",
    "TimeSignatureMap",
    "metadata",
    "midi_bytes",
    "read_midi",
    "read_midi_bytes",
    "validate",
    "write_midi",
]
