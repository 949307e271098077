"""Key finding: Krumhansl–Schmuckler correlation of pitch-class durations with 24 rotated key profiles.

Profiles (tonic first, C major / C minor):

- `krumhansl_kessler`: probe-tone ratings, Krumhansl & Kessler (1982).
- `temperley`: Temperley's profiles from the Kostka–Payne harmony textbook corpus (2007).
- `albrecht_shanahan`: corpus profiles of Albrecht & Shanahan (2013), the most decisive about the third.

Key names use one spelling rule: the spelling whose key signature has fewer accidentals (Bb major,
not A# major; C# minor, not Db minor; G# minor, not Ab minor); of the two six-accidental keys the
more common spellings are taken, F# major and Eb minor.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Final, Literal

import numpy as np

from aurl.analyze.meter import segment_index
from aurl.errors import UsageError
from aurl.midi.score import Score

ProfileName = Literal["krumhansl_kessler", "temperley", "albrecht_shanahan"]

PROFILES: Final[dict[str, tuple[tuple[float, ...], tuple[float, ...]]]] = {
    "krumhansl_kessler": (
        (6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88),
        (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17),
    ),
    "temperley": (
        (0.748, 0.060, 0.488, 0.082, 0.670, 0.460, 0.096, 0.715, 0.104, 0.366, 0.057, 0.400),
        (0.712, 0.084, 0.474, 0.618, 0.049, 0.460, 0.105, 0.747, 0.404, 0.067, 0.133, 0.330),
    ),
    "albrecht_shanahan": (
        (0.238, 0.006, 0.111, 0.006, 0.137, 0.094, 0.016, 0.214, 0.009, 0.080, 0.008, 0.081),
        (0.220, 0.006, 0.104, 0.123, 0.019, 0.103, 0.012, 0.214, 0.062, 0.022, 0.061, 0.052),
    ),
}
DEFAULT_PROFILE: Final = "albrecht_shanahan"
# The bonus (in correlation units) for keys whose tonic is the lowest note of the final sonority:
# pieces end on the tonic far more often than anywhere else. Small on purpose: it only settles
# near-ties; a large one would copy the chorale benchmark's own labelling rule (docs/analyze.md).
DEFAULT_FINAL_BASS_WEIGHT: Final = 0.1

SHARP_NAMES: Final = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
FLAT_NAMES: Final = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")
LETTERS: Final = "CDEFGAB"
LETTER_PITCH_CLASS: Final = (0, 2, 4, 5, 7, 9, 11)
# Letter steps above the tonic for each semitone degree (b2/2 -> 1, b3/3 -> 2, 4/#4 -> 3, ...).
DEGREE_STEPS: Final = (0, 1, 1, 2, 2, 3, 3, 4, 5, 5, 6, 6)
# Tonic spellings by pitch class, from the fewest-accidentals rule in the module docstring.
MAJOR_TONICS: Final = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
MINOR_TONICS: Final = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B")
# Sharps (+) or flats (-) in each key's signature, by tonic pitch class.
MAJOR_SIGNATURE: Final = (0, -5, 2, -3, 4, -1, 6, 1, -4, 3, -2, 5)
MINOR_SIGNATURE: Final = (-3, 4, -1, -6, 1, -4, 3, -2, 5, 0, -5, 2)


@dataclass(frozen=True)
class Key:
    """A key: tonic pitch class 0..11 (C = 0) and mode."""

    tonic: int
    minor: bool

    @property
    def index(self) -> int:
        """Position among the 24 keys: 0..11 major, 12..23 minor."""
        return self.tonic + 12 * self.minor

    @classmethod
    def from_index(cls, index: int) -> Key:
        return cls(int(index) % 12, bool(index >= 12))

    @property
    def name(self) -> str:
        """Like "Bb major" or "F# minor" (spelling rule in the module docstring)."""
        tonics = MINOR_TONICS if self.minor else MAJOR_TONICS
        return f"{tonics[self.tonic]} {'minor' if self.minor else 'major'}"

    @property
    def sharps(self) -> int:
        """Key-signature accidentals: positive sharps, negative flats."""
        return (MINOR_SIGNATURE if self.minor else MAJOR_SIGNATURE)[self.tonic]

    def spell(self, pitch_class: int) -> str:
        """A pitch class spelled as a scale degree of this key.

        Diatonic notes take the key's letters; chromatic ones are the usual alterations: b2, b3, #4,
        b6, b7 in major, and b2, #3, #4, #6, #7 in minor (the raised sixth and leading tone), so
        the leading tone of G minor is F#, the flat sixth of C major Ab, the leading tone of G# minor F##.
        """
        tonic_name = (MINOR_TONICS if self.minor else MAJOR_TONICS)[self.tonic]
        letter = (LETTERS.index(tonic_name[0]) + DEGREE_STEPS[(int(pitch_class) - self.tonic) % 12]) % 7
        alteration = (int(pitch_class) - LETTER_PITCH_CLASS[letter] + 6) % 12 - 6
        return LETTERS[letter] + ("#" * alteration if alteration > 0 else "b" * -alteration)

    @classmethod
    def parse(cls, name: str) -> Key:
        """The key named like "F# minor" or "Bb major" (any spelling of the tonic)."""
        tonic_name, _, mode = name.strip().partition(" ")
        lookup = {n.lower(): i for i, n in enumerate(SHARP_NAMES)} | {
            n.lower(): i for i, n in enumerate(FLAT_NAMES)
        }
        lookup |= {"cb": 11, "fb": 4, "e#": 5, "b#": 0}
        if tonic_name.lower() not in lookup or mode.lower() not in ("major", "minor"):
            raise UsageError(f"key {name!r} is not a key name; expected e.g. 'F# minor' or 'Bb major'")
        return cls(lookup[tonic_name.lower()], mode.lower() == "minor")


@dataclass(frozen=True)
class KeyEstimate:
    """A key with how well it fits: `correlation` of the profile, `margin` over the runner-up key."""

    key: Key
    correlation: float
    margin: float
    scores: np.ndarray  # (24,) the score of every key, by Key.index


def profile_matrix(profile: str = DEFAULT_PROFILE) -> np.ndarray:
    """(24, 12) the profile rotated to every key (rows by Key.index), each row z-scored; read-only."""
    if profile not in PROFILES:
        raise UsageError(f"key profile {profile!r} is unknown; choose one of {', '.join(PROFILES)}")
    return _rotated(profile)


@cache
def _rotated(profile: str) -> np.ndarray:
    major, minor = (np.asarray(p, np.float64) for p in PROFILES[profile])
    rows = np.stack([np.roll(major, t) for t in range(12)] + [np.roll(minor, t) for t in range(12)])
    rows = (rows - rows.mean(axis=1, keepdims=True)) / rows.std(axis=1, keepdims=True)
    rows.setflags(write=False)
    return rows


def key_correlations(histograms: np.ndarray, profile: str = DEFAULT_PROFILE) -> np.ndarray:
    """Pearson correlation of each pitch-class histogram with the 24 rotated profiles.

    Args:
        histograms: (..., 12) pitch-class weights.
    Returns:
        (..., 24) correlations in -1..1, by Key.index; 0 for an all-zero histogram.
    """
    h = np.asarray(histograms, np.float64)
    centred = h - h.mean(axis=-1, keepdims=True)
    std = centred.std(axis=-1, keepdims=True)
    z = np.divide(centred, std, out=np.zeros_like(centred), where=std > 0)
    return z @ profile_matrix(profile).T / 12.0


def pitch_class_durations(score: Score) -> np.ndarray:
    """(12,) total sounding length in beats of each pitch class; drums left out."""
    pitched = ~score.is_drum
    weights = score.duration[pitched] / score.ticks_per_beat
    return np.bincount(score.pitch[pitched] % 12, weights=weights, minlength=12)


def pitch_class_profile(score: Score, boundaries: np.ndarray) -> np.ndarray:
    """(S, 12) beats each pitch class sounds inside each segment [boundaries[s], boundaries[s+1]).

    Notes that cross a boundary are split between the segments they overlap. Drums left out.

    Args:
        boundaries: (S + 1,) increasing ticks.
    """
    pitched = ~score.is_drum
    onset, offset, pc = score.onset[pitched], score.offset[pitched], score.pitch[pitched] % 12
    # Sounding time up to t per pitch class is t * active(t) - sum(event times of active notes):
    # cumulative sums over the time-sorted on/off events give it at every boundary at once.
    times = np.concatenate([onset, offset])
    slope = np.concatenate([np.ones(len(onset)), -np.ones(len(offset))])
    order = np.argsort(times, kind="stable")
    times, slope, pcs = times[order], slope[order], np.concatenate([pc, pc])[order]
    one_hot = np.zeros((len(times) + 1, 12))
    one_hot[np.arange(1, len(times) + 1), pcs] = slope
    active = np.cumsum(one_hot, axis=0)
    weighted = np.zeros_like(one_hot)
    weighted[1:] = one_hot[1:] * times[:, None]
    weighted = np.cumsum(weighted, axis=0)
    at = np.searchsorted(times, boundaries, side="right")
    sounded = boundaries[:, None] * active[at] - weighted[at]
    return np.diff(sounded, axis=0) / score.ticks_per_beat


def final_bass(score: Score) -> int | None:
    """Pitch class of the lowest note sounding when the last note starts; None without pitched notes."""
    pitched = ~score.is_drum
    if not pitched.any():
        return None
    last_onset = score.onset[pitched].max()
    sounding = pitched & (score.onset <= last_onset) & (score.offset > last_onset)
    sounding |= pitched & (score.onset == last_onset)
    return int(score.pitch[sounding].min() % 12)


def estimate_key(
    score: Score,
    profile: str = DEFAULT_PROFILE,
    final_bass_weight: float = DEFAULT_FINAL_BASS_WEIGHT,
) -> KeyEstimate | None:
    """The key of a whole piece: the best of 24 profile correlations, plus a final-bass bonus.

    Args:
        score: the piece; drums are ignored.
        profile: one of PROFILES.
        final_bass_weight: added to the score of both keys (major and minor) whose tonic is the
            lowest note of the final sonority; 0 gives plain Krumhansl–Schmuckler.
    Returns:
        The estimate, or None when no pitched note sounds.
    """
    histogram = pitch_class_durations(score)
    if histogram.sum() <= 0:
        return None
    correlations = key_correlations(histogram, profile)
    scores = correlations.copy()
    bass = final_bass(score)
    if bass is not None:
        scores[[bass, bass + 12]] += final_bass_weight
    return _pick(scores, correlations)


def _pick(scores: np.ndarray, correlations: np.ndarray) -> KeyEstimate:
    order = np.argsort(-scores, kind="stable")
    best = int(order[0])
    return KeyEstimate(
        Key.from_index(best),
        correlation=float(correlations[best]),
        margin=float(scores[best] - scores[order[1]]),
        scores=scores,
    )


@dataclass(frozen=True)
class KeyRegion:
    """A stretch of bars [start_bar, end_bar) in one key; `confidence` is its mean window correlation."""

    start_bar: int
    end_bar: int
    key: Key
    confidence: float


def windowed_keys(
    score: Score,
    bar_ticks: np.ndarray,
    window_bars: int = 4,
    profile: str = DEFAULT_PROFILE,
    change_penalty: float = 0.25,
) -> list[KeyRegion]:
    """Local keys (modulations): correlations over sliding windows, smoothed by a Viterbi path.

    Each bar is scored with the pitch-class durations of the `window_bars` bars centred on it; the
    path through the 24 keys maximises the summed correlation minus `change_penalty` per key change,
    so a key must hold for a while to count as a modulation.

    Args:
        bar_ticks: (B,) bar starts in ticks (from `meter.bar_starts`).
    Returns:
        Regions in order, covering bars 0..B; empty when the piece has no pitched notes.
    """
    if not (~score.is_drum).any():
        return []
    boundaries = np.concatenate([bar_ticks, [max(score.end_ticks, int(bar_ticks[-1]) + 1)]])
    per_bar = pitch_class_profile(score, boundaries)
    cumulative = np.concatenate([np.zeros((1, 12)), np.cumsum(per_bar, axis=0)])
    n = len(per_bar)
    lo = np.clip(np.arange(n) - window_bars // 2, 0, max(n - window_bars, 0))
    hi = np.minimum(lo + window_bars, n)
    correlations = key_correlations(cumulative[hi] - cumulative[lo], profile)
    path = _viterbi(correlations, change_penalty)
    starts = np.flatnonzero(np.concatenate([[True], path[1:] != path[:-1]]))
    ends = np.concatenate([starts[1:], [n]])
    return [
        KeyRegion(int(a), int(b), Key.from_index(path[a]), float(correlations[a:b, path[a]].mean()))
        for a, b in zip(starts, ends, strict=True)
    ]


def _viterbi(scores: np.ndarray, change_penalty: float) -> np.ndarray:
    """The state path maximising sum(scores[t, state_t]) - change_penalty * (number of changes)."""
    n, k = scores.shape
    transition = np.full((k, k), -change_penalty)
    np.fill_diagonal(transition, 0.0)
    total = scores[0].copy()
    back = np.zeros((n, k), np.int64)
    for t in range(1, n):  # one step per bar, 24 states each: not a per-note loop
        candidates = total[:, None] + transition
        back[t] = np.argmax(candidates, axis=0)
        total = candidates[back[t], np.arange(k)] + scores[t]
    path = np.zeros(n, np.int64)
    path[-1] = int(np.argmax(total))
    for t in range(n - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


def key_at(regions: list[KeyRegion], bar: np.ndarray) -> list[Key]:
    """The local key of each bar index, from `windowed_keys` regions."""
    starts = np.array([r.start_bar for r in regions])
    return [regions[i].key for i in segment_index(starts, np.asarray(bar))]
