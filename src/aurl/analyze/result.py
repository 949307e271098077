"""What `analyze_file` returns: pydantic models, one JSON object per analysed file.

Times are in beats of one quarter note from the start of the piece (`*_beats`) or in bars from the
first bar line of the time-signature map (`*_bar`, 0-based, end exclusive).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KeyCandidate(_Frozen):
    key: str = Field(description='A key such as "F# minor" or "Bb major".')
    score: float = Field(description="Profile correlation, plus the final-bass bonus when it applies.")


class KeyRegionResult(_Frozen):
    start_bar: int
    end_bar: int
    key: str
    confidence: float = Field(description="Mean correlation of the region's windows with the key's profile.")


class TimeSignatureChange(_Frozen):
    start_beats: float
    time_signature: str = Field(description='Like "3/4".')


class MetreResult(_Frozen):
    beats_per_bar: int = Field(description="2, 3 or 4 quarter-note beats per bar, heard in the notes.")
    first_downbeat_beats: int = Field(description="Where the first full bar starts: the pickup length.")
    confidence: float = Field(description="1 - runner-up score / best score.")


class ChordResult(_Frozen):
    start_beats: float
    end_beats: float
    symbol: str = Field(description='Chord symbol spelled in the key, e.g. "F#m7", "Bb/D".')
    roman: str = Field(description='Roman numeral in the key, e.g. "V7", "ii", "viiø7".')


class ChordPattern(_Frozen):
    pattern: list[str] = Field(description="Consecutive Roman numerals of the progression.")
    count: int


class SectionResult(_Frozen):
    label: str = Field(description='"A", "B", ...; a prime marks a variant: "A′".')
    start_bar: int
    end_bar: int
    start_beats: float
    end_beats: float


class PhraseResult(_Frozen):
    start_beats: float
    end_beats: float
    reasons: list[str] = Field(description='Cues at the end boundary: "rest", "cadence", "lbdm" or "end".')


class MelodyResult(_Frozen):
    n_notes: int
    lowest_pitch: int | None
    highest_pitch: int | None
    contour: str = Field(description="Parsons code of the top voice: * then u, d or r per step.")
    interval_histogram: list[int] = Field(description="Counts of melodic intervals -12..+12 semitones.")


class MotifResult(_Frozen):
    intervals: list[int] = Field(description="Semitone steps; the motif has one note more.")
    occurrences_beats: list[float] = Field(description="Start of each occurrence.")


class AnalysisResult(_Frozen):
    """The analysis of one file (see docs/analyze.md for every method)."""

    file: str
    n_notes: int
    duration_beats: float
    key: str | None = Field(description='Global key, e.g. "F# minor"; None without pitched notes.')
    key_confidence: float = Field(
        description="Correlation of the pitch-class durations with the key's profile."
    )
    key_margin: float = Field(description="How far the key's score leads the runner-up's.")
    key_profile: str
    key_candidates: list[KeyCandidate]
    key_regions: list[KeyRegionResult] = Field(description="Local keys over 4-bar windows: modulations.")
    tempo_bpm: float = Field(description="From the file: the tempo in force longest (120 without one).")
    tempo_bpm_from_notes: float | None = Field(description="Heard in the onsets by autocorrelation.")
    time_signature: str = Field(description="From the file: the first time signature (4/4 without one).")
    time_signatures: list[TimeSignatureChange]
    metre_from_notes: MetreResult | None
    chords: list[ChordResult] = Field(description="One per beat, consecutive equal chords merged.")
    bar_chords: list[ChordResult] = Field(description="One per bar.")
    progression: list[str] = Field(description="Roman numerals of the beat chords, repeats merged.")
    chord_patterns: list[ChordPattern]
    sections: list[SectionResult]
    phrases: list[PhraseResult]
    melody: MelodyResult
    motifs: list[MotifResult]
