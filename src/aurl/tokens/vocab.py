"""The 774-token event vocabulary: its families, their value tables and token names.

Layout (ids are contiguous per family, in this order; docs/tokens.md explains each family):

    family      size  values
    special        4  PAD, BOS, EOS, MASK
    Bar            1  a bar line
    TimeSig       64  numerator 1..16 over denominator 2, 4, 8, 16
    Tempo        128  30 bpm * 2**(i/24), i = 0..127 (24 steps per octave; 60, 120, 240 exact)
    TimeShift    128  advance 1..128 grid steps (a step is a 32nd note: 8 per beat)
    Track         32  which voice the following note events belong to
    Program      129  General MIDI program 0..127 for the current track, or Drums
    Velocity      32  velocity bin for the current track's next notes
    NoteOn       128  start pitch 0..127 in the current track
    NoteOff      128  end pitch 0..127 in the current track
                 ---
                 774
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from aurl.errors import CheckpointError

VOCAB_VERSION: Final = "aurl-events-v1"
STEPS_PER_BEAT: Final = 8  # a 32nd-note grid: a beat (quarter note) is 8 steps

N_PITCHES: Final = 128
N_PROGRAMS: Final = 128
DRUM_PROGRAM_TOKEN: Final = N_PROGRAMS  # Program value 128 means "percussion (MIDI channel 10)"
N_TRACKS: Final = 32
N_VELOCITY_BINS: Final = 32
MAX_SHIFT: Final = 128
TS_NUMERATORS: Final = tuple(range(1, 17))
TS_DENOMINATORS: Final = (2, 4, 8, 16)
N_TEMPOS: Final = 128
TEMPO_MIN_BPM: Final = 30.0
TEMPO_STEPS_PER_OCTAVE: Final = 24


@dataclass(frozen=True)
class Family:
    """A contiguous run of token ids of one kind: ids `start` .. `start + size - 1`."""

    name: str
    start: int
    size: int

    @property
    def stop(self) -> int:
        return self.start + self.size

    def id(self, value_index: int) -> int:
        """The token id of this family's `value_index`-th value (0-based)."""
        if not 0 <= value_index < self.size:
            raise ValueError(f"{self.name} value index {value_index} outside 0..{self.size - 1}")
        return self.start + value_index

    def contains(self, ids: np.ndarray) -> np.ndarray:
        """Boolean mask of the ids that belong to this family."""
        return (ids >= self.start) & (ids < self.stop)


def _families() -> dict[str, Family]:
    sizes = [
        ("Special", 4),
        ("Bar", 1),
        ("TimeSig", len(TS_NUMERATORS) * len(TS_DENOMINATORS)),
        ("Tempo", N_TEMPOS),
        ("TimeShift", MAX_SHIFT),
        ("Track", N_TRACKS),
        ("Program", N_PROGRAMS + 1),
        ("Velocity", N_VELOCITY_BINS),
        ("NoteOn", N_PITCHES),
        ("NoteOff", N_PITCHES),
    ]
    families, start = {}, 0
    for name, size in sizes:
        families[name] = Family(name, start, size)
        start += size
    return families


FAMILIES: Final = _families()
VOCAB_SIZE: Final = sum(f.size for f in FAMILIES.values())
assert VOCAB_SIZE == 774, VOCAB_SIZE

SPECIAL, BAR_FAMILY, TIME_SIG, TEMPO, TIME_SHIFT, TRACK, PROGRAM, VELOCITY, NOTE_ON, NOTE_OFF = (
    FAMILIES[name]
    for name in (
        "Special",
        "Bar",
        "TimeSig",
        "Tempo",
        "TimeShift",
        "Track",
        "Program",
        "Velocity",
        "NoteOn",
        "NoteOff",
    )
)
PAD: Final = 0
BOS: Final = 1
EOS: Final = 2
MASK: Final = 3
BAR: Final = BAR_FAMILY.start
SPECIAL_NAMES: Final = ("PAD", "BOS", "EOS", "MASK")

# --- value tables -------------------------------------------------------------------------------

# Time signatures, by TimeSig value index: numerator, denominator and bar length in grid steps.
TS_NUMERATOR: Final = np.array([n for d in TS_DENOMINATORS for n in TS_NUMERATORS], np.int16)
TS_DENOMINATOR: Final = np.array([d for d in TS_DENOMINATORS for _ in TS_NUMERATORS], np.int16)
TS_BAR_STEPS: Final = (TS_NUMERATOR.astype(np.int64) * 4 * STEPS_PER_BEAT) // TS_DENOMINATOR
DEFAULT_TS_INDEX: Final = int(np.flatnonzero((TS_NUMERATOR == 4) & (TS_DENOMINATOR == 4))[0])

# Tempo bins: geometric, 24 per octave from 30 bpm, so a bin is ~2.9% wide.
TEMPO_BPM: Final = TEMPO_MIN_BPM * 2.0 ** (np.arange(N_TEMPOS) / TEMPO_STEPS_PER_OCTAVE)
DEFAULT_TEMPO_INDEX: Final = 2 * TEMPO_STEPS_PER_OCTAVE  # 120 bpm

# Velocity bins: velocity v in 1..127 falls in bin (v - 1) * 32 // 127; each bin decodes to the
# middle velocity of those that fall in it, so quantising twice changes nothing.
VELOCITY_TO_BIN: Final = np.concatenate([[0], (np.arange(1, 128) - 1) * N_VELOCITY_BINS // 127]).astype(
    np.int16
)
BIN_TO_VELOCITY: Final = np.array(
    [int(np.median(np.flatnonzero(VELOCITY_TO_BIN[1:] == b) + 1)) for b in range(N_VELOCITY_BINS)], np.int16
)
assert np.array_equal(VELOCITY_TO_BIN[BIN_TO_VELOCITY], np.arange(N_VELOCITY_BINS))


def tempo_index(bpm: np.ndarray | float) -> np.ndarray:
    """Nearest tempo bin (in log space) for each bpm; out-of-range tempi clamp to the ends."""
    bpm = np.maximum(np.asarray(bpm, np.float64), 1e-6)
    index = np.rint(np.log2(bpm / TEMPO_MIN_BPM) * TEMPO_STEPS_PER_OCTAVE)
    return np.clip(index, 0, N_TEMPOS - 1).astype(np.int64)


def time_signature_index(numerator: int, denominator: int) -> int | None:
    """The TimeSig value index of numerator/denominator, or None when the vocabulary lacks it."""
    if numerator in TS_NUMERATORS and denominator in TS_DENOMINATORS:
        return TS_DENOMINATORS.index(denominator) * len(TS_NUMERATORS) + numerator - 1
    return None


# --- per-token tables (what a model may know of tokens without importing this package) ------------


def time_advance_table() -> np.ndarray:
    """(V,) int64: how many grid steps each token advances time (TimeShift k advances k, others 0)."""
    table = np.zeros(VOCAB_SIZE, np.int64)
    table[TIME_SHIFT.start : TIME_SHIFT.stop] = np.arange(1, MAX_SHIFT + 1)
    return table


def bar_start_table() -> np.ndarray:
    """(V,) bool: True for the token that starts a bar."""
    table = np.zeros(VOCAB_SIZE, np.bool_)
    table[BAR] = True
    return table


def bar_steps_table() -> np.ndarray:
    """(V,) int64: bar length in grid steps set by each TimeSig token, 0 for every other token."""
    table = np.zeros(VOCAB_SIZE, np.int64)
    table[TIME_SIG.start : TIME_SIG.stop] = TS_BAR_STEPS
    return table


# --- names ---------------------------------------------------------------------------------------


def _names() -> tuple[str, ...]:
    names = list(SPECIAL_NAMES) + ["Bar"]
    names += [f"TimeSig_{n}/{d}" for n, d in zip(TS_NUMERATOR, TS_DENOMINATOR, strict=True)]
    names += [f"Tempo_{bpm:.1f}" for bpm in TEMPO_BPM]
    names += [f"TimeShift_{k}" for k in range(1, MAX_SHIFT + 1)]
    names += [f"Track_{t}" for t in range(N_TRACKS)]
    names += [f"Program_{p}" for p in range(N_PROGRAMS)] + ["Program_Drums"]
    names += [f"Velocity_{int(v)}" for v in BIN_TO_VELOCITY]
    names += [f"NoteOn_{p}" for p in range(N_PITCHES)]
    names += [f"NoteOff_{p}" for p in range(N_PITCHES)]
    return tuple(names)


TOKEN_NAMES: Final = _names()
assert len(TOKEN_NAMES) == VOCAB_SIZE and len(set(TOKEN_NAMES)) == VOCAB_SIZE
_NAME_TO_ID: Final = {name: i for i, name in enumerate(TOKEN_NAMES)}
FAMILY_OF: Final = np.concatenate(
    [np.full(f.size, i, np.int8) for i, f in enumerate(FAMILIES.values())]
)  # (V,) index into list(FAMILIES)


def token_name(token_id: int) -> str:
    """The printable name of a token id, e.g. `NoteOn_60`, `TimeShift_8`, `Program_Drums`."""
    if not 0 <= token_id < VOCAB_SIZE:
        raise ValueError(f"token id {token_id} outside the vocabulary 0..{VOCAB_SIZE - 1}")
    return TOKEN_NAMES[token_id]


def token_id(name: str) -> int:
    """The id of a printable token name; the inverse of `token_name`."""
    try:
        return _NAME_TO_ID[name]
    except KeyError:
        raise ValueError(f"unknown token name {name!r}") from None


def describe() -> dict[str, object]:
    """The layout as plain data (what vocab.json in a run directory holds)."""
    return {
        "version": VOCAB_VERSION,
        "size": VOCAB_SIZE,
        "steps_per_beat": STEPS_PER_BEAT,
        "families": {f.name: {"start": f.start, "size": f.size} for f in FAMILIES.values()},
        "tokens": list(TOKEN_NAMES),
    }


def check_vocab_version(found: str | None, source: object) -> None:
    """Refuse a model file made for another vocabulary, or one that does not say which.

    Args:
        found: the 'vocab_version' its metadata records (None: not recorded).
        source: the file, named in the message.

    Raises:
        CheckpointError: `found` is not this aurl's VOCAB_VERSION.
    """
    if found != VOCAB_VERSION:
        said = f"was made for vocabulary {found!r}" if found else "does not record its vocabulary version"
        raise CheckpointError(
            f"model file '{source}' {said}, but this aurl uses {VOCAB_VERSION!r}; "
            "use a model trained with this version of aurl"
        )
