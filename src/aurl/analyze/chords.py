"""Chords by template matching over time segments (beats or bars), named as symbols and Roman numerals.

Each segment's pitch-class durations are scored against every quality at every root (Pardo &
Birmingham's template matching): the weight of the segment's notes inside the template, minus the
weight outside it, minus MISSING_PENALTY for each template tone that does not sound. Ties go to
the chord whose root is the bass, then to the simpler quality (order of QUALITIES).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Final

import numpy as np

from aurl.analyze.key import Key, pitch_class_profile
from aurl.midi.score import Score

# name, intervals above the root, symbol suffix, Roman-numeral case (True = upper) and suffix.
QUALITIES: Final = (
    ("major", (0, 4, 7), "", True, ""),
    ("minor", (0, 3, 7), "m", False, ""),
    ("dom7", (0, 4, 7, 10), "7", True, "7"),
    ("min7", (0, 3, 7, 10), "m7", False, "7"),
    ("maj7", (0, 4, 7, 11), "maj7", True, "M7"),
    ("dim", (0, 3, 6), "dim", False, "°"),
    ("half_dim7", (0, 3, 6, 10), "m7b5", False, "ø7"),
    ("dim7", (0, 3, 6, 9), "dim7", False, "°7"),
    ("aug", (0, 4, 8), "aug", True, "+"),
    ("sus4", (0, 5, 7), "sus4", True, "sus4"),
    ("sus2", (0, 2, 7), "sus2", True, "sus2"),
)
MISSING_PENALTY: Final = 0.6  # per absent template tone, in units of the segment's loudest pitch class
PRESENT: Final = 0.1  # a pitch class "sounds" when it has at least this share of the loudest one
BASS_BONUS: Final = 0.1
MIN_BASS_SHARE: Final = 0.25  # a bass note must fill this share of the segment to count
# Degree labels by semitones above the tonic; minor keys count from the natural minor scale.
MAJOR_DEGREES: Final = ("I", "bII", "II", "bIII", "III", "IV", "#IV", "V", "bVI", "VI", "bVII", "VII")
MINOR_DEGREES: Final = ("I", "bII", "II", "III", "#III", "IV", "#IV", "V", "VI", "#VI", "VII", "#VII")
LEADING_TONE_QUALITIES: Final = ("dim", "half_dim7", "dim7")


@dataclass(frozen=True)
class Chord:
    """A chord: root and bass pitch classes (0..11, C = 0) and a quality name from QUALITIES."""

    root: int
    quality: str
    bass: int

    def symbol(self, key: Key) -> str:
        """A chord symbol spelled in `key`, with the bass after a slash when it is not the root: "C7/E"."""
        suffix = next(q[2] for q in QUALITIES if q[0] == self.quality)
        name = key.spell(self.root) + suffix
        return name if self.bass == self.root else f"{name}/{key.spell(self.bass)}"

    def roman(self, key: Key) -> str:
        """The Roman numeral in `key`: case from the third, accidentals against the key's scale.

        In minor keys the leading-tone chords are written vii°, viiø7, vii°7 (no sharp), as in
        harmony textbooks.
        """
        _, _, _, upper, suffix = next(q for q in QUALITIES if q[0] == self.quality)
        degree = (self.root - key.tonic) % 12
        label = (MINOR_DEGREES if key.minor else MAJOR_DEGREES)[degree]
        if key.minor and degree == 11 and self.quality in LEADING_TONE_QUALITIES:
            label = "VII"
        accidental = label.rstrip("IV")
        numeral = label[len(accidental) :]
        return accidental + (numeral if upper else numeral.lower()) + suffix


def _templates() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(C, 12) binary templates for every quality at every root, and their (C,) roots and quality indices."""
    rows, roots, kinds = [], [], []
    for q, (_, intervals, *_rest) in enumerate(QUALITIES):
        for root in range(12):
            row = np.zeros(12)
            row[[(root + i) % 12 for i in intervals]] = 1.0
            rows.append(row)
            roots.append(root)
            kinds.append(q)
    return np.stack(rows), np.array(roots), np.array(kinds)


TEMPLATES, TEMPLATE_ROOTS, TEMPLATE_QUALITIES = _templates()


def segment_bass(score: Score, boundaries: np.ndarray) -> np.ndarray:
    """(S,) lowest pitch class sounding through at least MIN_BASS_SHARE of each segment; -1 when silent.

    Args:
        boundaries: (S + 1,) increasing ticks.
    """
    pitched = ~score.is_drum
    onset, offset, pitch = score.onset[pitched], score.offset[pitched], score.pitch[pitched]
    n_segments = len(boundaries) - 1
    first = np.clip(np.searchsorted(boundaries, onset, side="right") - 1, 0, n_segments - 1)
    last = np.clip(np.searchsorted(boundaries, offset, side="left") - 1, 0, n_segments - 1)
    spans = np.maximum(last - first + 1, 1)
    # One row per (note, segment it overlaps); notes rarely span more than a few segments.
    note = np.repeat(np.arange(len(onset)), spans)
    segment = first[note] + np.arange(len(note)) - np.repeat(np.cumsum(spans) - spans, spans)
    overlap = np.minimum(offset[note], boundaries[segment + 1]) - np.maximum(onset[note], boundaries[segment])
    length = np.diff(boundaries)[segment]
    enough = overlap >= MIN_BASS_SHARE * length
    lowest = np.full(n_segments, 128)
    np.minimum.at(lowest, segment[enough], pitch[note[enough]])
    fallback = np.full(n_segments, 128)
    np.minimum.at(fallback, segment[overlap > 0], pitch[note[overlap > 0]])
    lowest = np.where(lowest < 128, lowest, fallback)
    return np.where(lowest < 128, lowest % 12, -1)


def match_chords(weights: np.ndarray, bass: np.ndarray) -> list[Chord | None]:
    """The best template for each segment.

    Args:
        weights: (S, 12) pitch-class durations per segment.
        bass: (S,) bass pitch class per segment, -1 for none.
    Returns:
        One Chord per segment, None where nothing sounds.
    """
    loudest = weights.max(axis=1, keepdims=True)
    w = np.divide(weights, loudest, out=np.zeros_like(weights), where=loudest > 0)
    present = (w >= PRESENT).astype(np.float64)
    inside = w @ TEMPLATES.T
    outside = w.sum(axis=1, keepdims=True) - inside
    missing = (1.0 - present) @ TEMPLATES.T
    score = inside - outside - MISSING_PENALTY * missing
    score = score + BASS_BONUS * (TEMPLATE_ROOTS[None, :] == bass[:, None])
    score = score - 1e-3 * TEMPLATE_QUALITIES[None, :]  # prefer the simpler quality on a tie
    best = np.argmax(score, axis=1)
    return [
        Chord(
            int(TEMPLATE_ROOTS[c]),
            QUALITIES[TEMPLATE_QUALITIES[c]][0],
            int(b) if b >= 0 else int(TEMPLATE_ROOTS[c]),
        )
        if loudest[s, 0] > 0
        else None
        for s, (c, b) in enumerate(zip(best, bass, strict=True))
    ]


def chords_in_segments(score: Score, boundaries: np.ndarray) -> list[Chord | None]:
    """Template-matched chords for the segments [boundaries[s], boundaries[s+1]) of a score."""
    boundaries = np.asarray(boundaries, np.int64)
    return match_chords(pitch_class_profile(score, boundaries), segment_bass(score, boundaries))


def progression(labels: list[str | None]) -> list[str]:
    """The chord sequence with repeats of the same chord merged and silent segments dropped."""
    sounding = [label for label in labels if label is not None]
    return [label for i, label in enumerate(sounding) if i == 0 or label != sounding[i - 1]]


def frequent_patterns(
    sequence: list[str], lengths: tuple[int, ...] = (2, 3, 4), top: int = 10
) -> list[tuple[tuple[str, ...], int]]:
    """The most frequent n-grams of a chord sequence, each with its count; only those seen twice or more.

    Ordered by count, then by length (longer first), then by first appearance.
    """
    found: Counter[tuple[str, ...]] = Counter()
    for n in lengths:
        found.update(tuple(sequence[i : i + n]) for i in range(len(sequence) - n + 1))
    repeated = [(pattern, count) for pattern, count in found.items() if count >= 2]
    repeated.sort(key=lambda item: (-item[1], -len(item[0])))
    return repeated[:top]
