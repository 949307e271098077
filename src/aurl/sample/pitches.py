"""Reading what a user types for pitches: note names, keys, scales, pitch ranges, metres and tempi.

Note names use scientific pitch notation with middle C = C4 = MIDI 60 (so C-1 is 0 and G9 is 127).
Every parser raises a one-line ConfigError that names the flag, the value and an example.
"""

from __future__ import annotations

import re

import numpy as np

from aurl.errors import ConfigError
from aurl.tokens import vocab

_LETTERS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_ACCIDENTALS = {"#": 1, "♯": 1, "b": -1, "♭": -1}
_NOTE = r"[A-Ga-g](?:#|b|♯|♭)*"
_NOTE_RE = re.compile(rf"^({_NOTE})(-?\d+)?$")
_RANGE_RE = re.compile(rf"^\s*({_NOTE}-?\d+|\d+)\s*(?:-|\.\.|:|–)\s*({_NOTE}-?\d+|\d+)\s*$")

# Scales as semitones above the tonic.
SCALES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
    "lydian": (0, 2, 4, 6, 7, 9, 11),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "locrian": (0, 1, 3, 5, 6, 8, 10),
    "harmonic_minor": (0, 2, 3, 5, 7, 8, 11),
    "melodic_minor": (0, 2, 3, 5, 7, 9, 11),
    "pentatonic": (0, 2, 4, 7, 9),
    "minor_pentatonic": (0, 3, 5, 7, 10),
    "blues": (0, 3, 5, 6, 7, 10),
    "chromatic": tuple(range(12)),
}
_ALIASES = {"maj": "major", "ionian": "major", "min": "minor", "m": "minor", "aeolian": "minor"}


def _scale_name(word: str) -> str | None:
    name = word.strip().lower().replace("-", "_").replace(" ", "_")
    name = _ALIASES.get(name, name)
    return name if name in SCALES else None


def pitch_class(name: str, flag: str = "--key") -> int:
    """0..11 for a note name without octave ('C', 'F#', 'Bb')."""
    match = _NOTE_RE.match(name.strip())
    if match is None or match.group(2) is not None:
        raise ConfigError(f"{flag}: '{name}' is not a note name; expected A-G with # or b, e.g. 'F#'")
    return _letter_value(match.group(1)) % 12


def _letter_value(note: str) -> int:
    return _LETTERS[note[0].upper()] + sum(_ACCIDENTALS[a] for a in note[1:])


def note_number(text: str, flag: str = "--pitch-range") -> int:
    """MIDI number of a note name with octave ('C4' = 60, 'Bb-1' = 10) or of a plain number.

    Raises:
        ConfigError: not a note, or outside 0..127.
    """
    text = text.strip()
    if text.isdigit():
        number = int(text)
    else:
        match = _NOTE_RE.match(text)
        if match is None or match.group(2) is None:
            raise ConfigError(f"{flag}: '{text}' is not a note; expected name and octave (C4 = 60) or 0-127")
        number = _letter_value(match.group(1)) + 12 * (int(match.group(2)) + 1)
    if not 0 <= number <= 127:
        raise ConfigError(f"{flag}: '{text}' is MIDI note {number}, outside 0..127 (C-1..G9)")
    return number


def parse_pitch_range(text: str) -> tuple[int, int]:
    """(low, high) MIDI numbers of 'LOW-HIGH' ('C3-C6', '48-84'); both included.

    Raises:
        ConfigError: unreadable, outside 0..127, or low above high.
    """
    match = _RANGE_RE.match(text)
    if match is None:
        raise ConfigError(f"--pitch-range: '{text}' is not LOW-HIGH; expected e.g. 'C3-C6' or '48-84'")
    low, high = note_number(match.group(1)), note_number(match.group(2))
    if low > high:
        raise ConfigError(f"--pitch-range: '{text}' is empty (low {low} above high {high}); swap the two")
    return low, high


def parse_key(key: str | None, scale: str | None) -> frozenset[int] | None:
    """Allowed pitch classes (0 = C) from --key ('D minor', 'F#', 'Bb dorian') and --scale.

    --scale is a scale name over the key's tonic (C without a key), or an explicit list of pitch
    classes ('C,D,Eb,G' or '0,2,3,7') that stands alone. None when neither is given.

    Raises:
        ConfigError: unreadable key or scale, an empty scale, or two different scale names.
    """
    if key is None and scale is None:
        return None
    tonic, key_scale = _split_key(key) if key is not None else (0, None)
    if scale is not None and _scale_name(scale) is None:
        if key is not None:
            raise ConfigError(
                f"--scale '{scale}' lists pitch classes, which already fix the notes; drop --key '{key}'"
            )
        return _pitch_class_list(scale)
    named = _scale_name(scale) if scale is not None else None
    if named is not None and key_scale is not None and named != key_scale:
        raise ConfigError(f"--key '{key}' says {key_scale} but --scale says {named}; give one of them")
    steps = SCALES[named or key_scale or "major"]
    return frozenset((tonic + s) % 12 for s in steps)


def _split_key(key: str) -> tuple[int, str | None]:
    text = key.strip()
    match = re.match(rf"^({_NOTE})(.*)$", text)
    if match is None:
        raise ConfigError(f"--key: '{key}' is not a key; expected a tonic and a scale, e.g. 'D minor'")
    rest = match.group(2).strip()
    name = _scale_name(rest) if rest else None
    if rest and name is None:
        raise ConfigError(f"--key: unknown scale '{rest}' in '{key}'; choose one of {', '.join(SCALES)}")
    return pitch_class(match.group(1)), name


def _pitch_class_list(text: str) -> frozenset[int]:
    parts = [p.strip() for p in re.split(r"[,\s]+", text) if p.strip()]
    if not parts:
        raise ConfigError(
            f"--scale: '{text}' is an empty scale; give a name ({', '.join(SCALES)}) or pitch classes 'C,E,G'"
        )
    classes = set()
    for part in parts:
        if part.isdigit():
            if int(part) > 11:
                raise ConfigError(f"--scale: pitch class {part} is outside 0..11 (0 is C)")
            classes.add(int(part))
        else:
            classes.add(pitch_class(part, "--scale"))
    return frozenset(classes)


def parse_time_signature(text: str) -> int:
    """The TimeSig value index of 'N/D' ('3/4', '6/8').

    Raises:
        ConfigError: unreadable, or a metre the vocabulary lacks (numerator 1-16 over 2, 4, 8, 16).
    """
    match = re.match(r"^\s*(\d+)\s*/\s*(\d+)\s*$", text)
    index = vocab.time_signature_index(int(match.group(1)), int(match.group(2))) if match else None
    if index is None:
        raise ConfigError(
            f"--time-signature: '{text}' is not a metre aurl can write; expected N/D with N in 1..16 "
            "and D in 2, 4, 8, 16, e.g. '3/4'"
        )
    return index


def parse_tempo(bpm: float) -> int:
    """The Tempo value index nearest to `bpm` beats per minute.

    Raises:
        ConfigError: bpm outside the vocabulary's tempo range (30 to about 1170 bpm).
    """
    low, high = float(vocab.TEMPO_BPM[0]), float(vocab.TEMPO_BPM[-1])
    edge = 2.0 ** (0.5 / vocab.TEMPO_STEPS_PER_OCTAVE)  # half a bin beyond either end still rounds in
    if not low / edge <= bpm <= high * edge:
        raise ConfigError(f"--tempo {bpm:g} bpm is outside the tempo range {low:.0f}..{high:.0f} bpm")
    return int(vocab.tempo_index(bpm))


def parse_programs(programs: tuple[int, ...]) -> np.ndarray:
    """(129,) bool of the allowed Program values (0..127 and 128 for drums).

    Raises:
        ConfigError: an empty list or a program outside 0..128.
    """
    allowed = np.zeros(vocab.N_PROGRAMS + 1, bool)
    if not programs:
        raise ConfigError("--program: no program given; name at least one (0-127, or 'drums')")
    for program in programs:
        if not 0 <= program <= vocab.N_PROGRAMS:
            raise ConfigError(f"--program {program} is outside 0..127 (128 or 'drums' for percussion)")
        allowed[program] = True
    return allowed
