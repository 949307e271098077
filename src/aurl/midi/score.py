"""The Score: one piece of music as per-note numpy arrays plus tempo, metre and key maps.

Everything between a MIDI file and tokens works on a Score. Notes are columns, not objects, so that
quantising, transposing and slicing are array operations. Times are in ticks at `ticks_per_beat`
(a beat is a quarter note, as in MIDI files).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

# dtypes of the note columns; kept in one place so every producer of a Score agrees.
NOTE_DTYPES: dict[str, Any] = {
    "pitch": np.int16,
    "onset": np.int64,
    "duration": np.int64,
    "velocity": np.int16,
    "program": np.int16,
    "is_drum": np.bool_,
    "track": np.int16,
}
DEFAULT_TEMPO_BPM = 120.0
DEFAULT_TIME_SIGNATURE = (4, 4)


def _column(values: Any, dtype: Any) -> np.ndarray:
    array = np.ascontiguousarray(values, dtype=dtype)
    if array.ndim != 1:
        raise ValueError(f"expected a 1-D array, got shape {array.shape}")
    return array


@dataclass(frozen=True, eq=False)
class TempoMap:
    """Tempo changes: `ticks[i]` is where `bpm[i]` (quarter notes per minute) starts."""

    ticks: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    bpm: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))

    def __post_init__(self) -> None:
        object.__setattr__(self, "ticks", _column(self.ticks, np.int64))
        object.__setattr__(self, "bpm", _column(self.bpm, np.float64))
        if len(self.ticks) != len(self.bpm):
            raise ValueError("TempoMap: ticks and bpm differ in length")

    def __len__(self) -> int:
        return len(self.ticks)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TempoMap) and _arrays_equal(self, other)


@dataclass(frozen=True, eq=False)
class TimeSignatureMap:
    """Time-signature changes: from `ticks[i]` on, bars hold `numerator[i]` beats of 1/`denominator[i]`."""

    ticks: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    numerator: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int16))
    denominator: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int16))

    def __post_init__(self) -> None:
        object.__setattr__(self, "ticks", _column(self.ticks, np.int64))
        object.__setattr__(self, "numerator", _column(self.numerator, np.int16))
        object.__setattr__(self, "denominator", _column(self.denominator, np.int16))
        if not len(self.ticks) == len(self.numerator) == len(self.denominator):
            raise ValueError("TimeSignatureMap: columns differ in length")

    def __len__(self) -> int:
        return len(self.ticks)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TimeSignatureMap) and _arrays_equal(self, other)


@dataclass(frozen=True, eq=False)
class KeySignatureMap:
    """Key-signature changes: `sharps[i]` in -7..7 (negative means flats), `minor[i]` for minor keys."""

    ticks: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    sharps: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))
    minor: np.ndarray = field(default_factory=lambda: np.zeros(0, np.bool_))

    def __post_init__(self) -> None:
        object.__setattr__(self, "ticks", _column(self.ticks, np.int64))
        object.__setattr__(self, "sharps", _column(self.sharps, np.int8))
        object.__setattr__(self, "minor", _column(self.minor, np.bool_))
        if not len(self.ticks) == len(self.sharps) == len(self.minor):
            raise ValueError("KeySignatureMap: columns differ in length")

    def __len__(self) -> int:
        return len(self.ticks)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KeySignatureMap) and _arrays_equal(self, other)


def _arrays_equal(a: Any, b: Any) -> bool:
    for f in fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            if x.shape != y.shape or not np.array_equal(x, y):
                return False
        elif x != y:
            return False
    return True


@dataclass(frozen=True, eq=False)
class Score:
    """A piece of music: one entry per note in each column, plus the maps that place notes in time.

    Attributes:
        ticks_per_beat: time resolution; a beat is a quarter note.
        pitch: (N,) MIDI pitch 0..127.
        onset: (N,) start of each note in ticks, >= 0.
        duration: (N,) length of each note in ticks, >= 0.
        velocity: (N,) 1..127.
        program: (N,) General MIDI program 0..127 (for drums: the kit, usually 0).
        is_drum: (N,) True for notes on the percussion channel (MIDI channel 10).
        track: (N,) index into `track_names`: one track per instrument or voice.
        tempos, time_signatures, key_signatures: the maps, sorted by ticks.
        track_names: a name per track; its length is the number of tracks.
        repairs: what the reader had to repair, one human-readable line each.
    """

    ticks_per_beat: int
    pitch: np.ndarray
    onset: np.ndarray
    duration: np.ndarray
    velocity: np.ndarray
    program: np.ndarray
    is_drum: np.ndarray
    track: np.ndarray
    tempos: TempoMap = field(default_factory=TempoMap)
    time_signatures: TimeSignatureMap = field(default_factory=TimeSignatureMap)
    key_signatures: KeySignatureMap = field(default_factory=KeySignatureMap)
    track_names: tuple[str, ...] = ()
    repairs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name, dtype in NOTE_DTYPES.items():
            object.__setattr__(self, name, _column(getattr(self, name), dtype))
        lengths = {len(getattr(self, name)) for name in NOTE_DTYPES}
        if len(lengths) != 1:
            raise ValueError(f"Score: note columns differ in length {sorted(lengths)}")
        if self.ticks_per_beat <= 0:
            raise ValueError(f"Score: ticks_per_beat must be positive, got {self.ticks_per_beat}")
        n_tracks = int(self.track.max()) + 1 if len(self.track) else 0
        if len(self.track_names) < n_tracks:
            names = tuple(self.track_names) + tuple(
                f"Track {i}" for i in range(len(self.track_names), n_tracks)
            )
            object.__setattr__(self, "track_names", names)
        object.__setattr__(self, "track_names", tuple(self.track_names))
        object.__setattr__(self, "repairs", tuple(self.repairs))

    @classmethod
    def empty(cls, ticks_per_beat: int = 480) -> Score:
        """A score without notes or maps."""
        columns = (np.zeros(0, dtype) for dtype in NOTE_DTYPES.values())
        return cls(ticks_per_beat, *columns)  # type: ignore[arg-type]  # mypy cannot map *columns to fields

    @classmethod
    def from_notes(cls, ticks_per_beat: int, notes: dict[str, Any], **rest: Any) -> Score:
        """Build a score from a dict of note columns; missing columns get defaults.

        Defaults: velocity 64, program 0, is_drum False, track 0. `pitch`, `onset` and `duration`
        are required.
        """
        n = len(notes["pitch"])
        defaults = {"velocity": 64, "program": 0, "is_drum": False, "track": 0}
        columns = {
            name: notes[name] if name in notes else np.full(n, defaults[name], dtype)
            for name, dtype in NOTE_DTYPES.items()
        }
        return cls(ticks_per_beat, **columns, **rest)  # type: ignore[arg-type]  # as above, **columns

    @property
    def n_notes(self) -> int:
        return len(self.pitch)

    @property
    def n_tracks(self) -> int:
        return len(self.track_names)

    @property
    def offset(self) -> np.ndarray:
        """(N,) end of each note in ticks."""
        return self.onset + self.duration

    @property
    def end_ticks(self) -> int:
        """The end of the last note in ticks (0 for a score without notes)."""
        return int(self.offset.max()) if self.n_notes else 0

    def notes(self) -> dict[str, np.ndarray]:
        """The note columns by name (the arrays themselves, not copies)."""
        return {name: getattr(self, name) for name in NOTE_DTYPES}

    def select(self, index: np.ndarray) -> Score:
        """A score with the notes picked by a boolean mask or an index array, maps unchanged."""
        picked = {name: column[index] for name, column in self.notes().items()}
        return replace(self, **picked)  # type: ignore[arg-type]  # mypy cannot map **picked to fields

    def sorted(self) -> Score:
        """The same score with notes in canonical order: by onset, then track, then pitch, then duration."""
        order = np.lexsort((self.duration, self.pitch, self.track, self.onset))
        return self.select(order)

    def with_notes(self, **columns: np.ndarray) -> Score:
        """A copy with some note columns replaced (all must keep the same length)."""
        return replace(self, **columns)  # type: ignore[arg-type]  # mypy cannot map **columns to fields

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Score) and _arrays_equal(self, other)

    def __repr__(self) -> str:
        return (
            f"Score({self.n_notes} notes, {self.n_tracks} tracks, tpq={self.ticks_per_beat}, "
            f"{len(self.tempos)} tempos, {len(self.time_signatures)} time signatures, "
            f"{len(self.repairs)} repairs)"
        )
