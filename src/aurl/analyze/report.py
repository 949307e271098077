"""The library entry points of `aurl analyze`: one Score or file in, an AnalysisResult out."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

from aurl.analyze import chords as chord_analysis
from aurl.analyze.key import DEFAULT_FINAL_BASS_WEIGHT, DEFAULT_PROFILE, Key, estimate_key, windowed_keys
from aurl.analyze.melody import find_motifs, interval_histogram, parsons_code, skyline
from aurl.analyze.meter import (
    bar_starts,
    beat_starts,
    estimate_metre,
    estimate_tempo_bpm,
    file_tempo_bpm,
    time_signature_segments,
)
from aurl.analyze.result import (
    AnalysisResult,
    ChordPattern,
    ChordResult,
    KeyCandidate,
    KeyRegionResult,
    MelodyResult,
    MetreResult,
    MotifResult,
    PhraseResult,
    SectionResult,
    TimeSignatureChange,
)
from aurl.analyze.structure import find_phrases, find_sections, self_similarity
from aurl.errors import AurlError
from aurl.midi.read import read_midi
from aurl.midi.score import Score

C_MAJOR = Key(0, False)  # spelling for chord names when a piece has no key (no pitched notes)


class RejectedFile(BaseModel):
    """A file that could not be analysed, with the one-line reason."""

    model_config = ConfigDict(frozen=True)
    file: str
    reason: str


class AnalyzeResult(BaseModel):
    """`aurl analyze` over several files: one analysis per readable file, the rest rejected."""

    model_config = ConfigDict(frozen=True)
    analyses: list[AnalysisResult]
    rejected: list[RejectedFile]


def _chord_spans(
    boundaries: np.ndarray, found: list[chord_analysis.Chord | None], key: Key, tpq: int, merge: bool
) -> list[ChordResult]:
    spans: list[list] = []  # [start, end, symbol, roman]
    for i, chord in enumerate(found):  # one per beat or bar
        if chord is None:
            continue
        start, end = float(boundaries[i] / tpq), float(boundaries[i + 1] / tpq)
        symbol = chord.symbol(key)
        if merge and spans and spans[-1][2] == symbol and spans[-1][1] == start:
            spans[-1][1] = end
        else:
            spans.append([start, end, symbol, chord.roman(key)])
    return [ChordResult(start_beats=a, end_beats=b, symbol=c, roman=d) for a, b, c, d in spans]


def _with_end(starts: np.ndarray, score: Score) -> np.ndarray:
    return np.concatenate([starts, [max(score.end_ticks, int(starts[-1]) + 1)]])


def analyze_score(
    score: Score,
    file: str = "",
    profile: str = DEFAULT_PROFILE,
    final_bass_weight: float = DEFAULT_FINAL_BASS_WEIGHT,
) -> AnalysisResult:
    """Key, tempo, metre, chords, sections, phrases, melody and motifs of one score.

    Args:
        score: the piece.
        file: the name reported in the result.
        profile: key profile (see `aurl.analyze.key.PROFILES`).
        final_bass_weight: bonus for keys on the final bass note (0 = plain Krumhansl–Schmuckler).
    """
    tpq = score.ticks_per_beat
    estimate = estimate_key(score, profile, final_bass_weight)
    key = estimate.key if estimate is not None else C_MAJOR
    bars, beats = _with_end(bar_starts(score), score), _with_end(beat_starts(score), score)
    beat_chords = chord_analysis.chords_in_segments(score, beats)
    bar_chords = chord_analysis.chords_in_segments(score, bars)
    melody = skyline(score)
    ts_ticks, num, den = time_signature_segments(score)
    metre = estimate_metre(score)
    top: list[int] = np.argsort(-estimate.scores)[:3].tolist() if estimate is not None else []
    romans, patterns = _progression(beat_chords, key)
    return AnalysisResult(
        file=file,
        n_notes=score.n_notes,
        duration_beats=score.end_ticks / tpq,
        key=estimate.key.name if estimate is not None else None,
        key_confidence=estimate.correlation if estimate is not None else 0.0,
        key_margin=estimate.margin if estimate is not None else 0.0,
        key_profile=profile,
        key_candidates=[
            KeyCandidate(key=Key.from_index(int(i)).name, score=float(estimate.scores[i]))
            for i in top
            if estimate is not None
        ],
        key_regions=[
            KeyRegionResult(start_bar=r.start_bar, end_bar=r.end_bar, key=r.key.name, confidence=r.confidence)
            for r in windowed_keys(score, bars[:-1], profile=profile)
        ],
        tempo_bpm=file_tempo_bpm(score),
        tempo_bpm_from_notes=estimate_tempo_bpm(score),
        time_signature=f"{num[0]}/{den[0]}",
        time_signatures=[
            TimeSignatureChange(start_beats=t / tpq, time_signature=f"{n}/{d}")
            for t, n, d in zip(ts_ticks, num, den, strict=True)
        ],
        metre_from_notes=MetreResult(**metre.__dict__) if metre is not None else None,
        chords=_chord_spans(beats, beat_chords, key, tpq, merge=True),
        bar_chords=_chord_spans(bars, bar_chords, key, tpq, merge=False),
        progression=romans,
        chord_patterns=patterns,
        sections=_sections(score, bars),
        phrases=[
            PhraseResult(
                start_beats=p.start_ticks / tpq, end_beats=p.end_ticks / tpq, reasons=list(p.reasons)
            )
            for p in find_phrases(score, melody, beats[:-1], beat_chords, estimate.key if estimate else None)
        ],
        melody=MelodyResult(
            n_notes=len(melody),
            lowest_pitch=int(melody.pitch.min()) if len(melody) else None,
            highest_pitch=int(melody.pitch.max()) if len(melody) else None,
            contour=parsons_code(melody),
            interval_histogram=interval_histogram(melody).tolist(),
        ),
        motifs=[
            MotifResult(
                intervals=list(m.intervals), occurrences_beats=(melody.onset[m.starts] / tpq).tolist()
            )
            for m in find_motifs(melody)
        ],
    )


def _progression(
    beat_chords: list[chord_analysis.Chord | None], key: Key
) -> tuple[list[str], list[ChordPattern]]:
    romans = chord_analysis.progression([c.roman(key) if c is not None else None for c in beat_chords])
    patterns = chord_analysis.frequent_patterns(romans)
    return romans, [ChordPattern(pattern=list(p), count=c) for p, c in patterns]


def _sections(score: Score, bars: np.ndarray) -> list[SectionResult]:
    tpq = score.ticks_per_beat
    return [
        SectionResult(
            label=s.label,
            start_bar=s.start_bar,
            end_bar=s.end_bar,
            start_beats=float(bars[s.start_bar] / tpq),
            end_beats=float(bars[s.end_bar] / tpq),
        )
        for s in find_sections(self_similarity(score, bars[:-1]))
    ]


def analyze_file(
    path: str | os.PathLike[str],
    profile: str = DEFAULT_PROFILE,
    final_bass_weight: float = DEFAULT_FINAL_BASS_WEIGHT,
) -> AnalysisResult:
    """Read a MIDI file and analyse it (see `analyze_score`).

    Raises:
        MidiError: when the file cannot be read.
    """
    return analyze_score(read_midi(path), str(path), profile, final_bass_weight)


def analyze_files(
    paths: Sequence[str | os.PathLike[str]],
    profile: str = DEFAULT_PROFILE,
    final_bass_weight: float = DEFAULT_FINAL_BASS_WEIGHT,
    on_progress: Callable[[int, int], None] | None = None,
) -> AnalyzeResult:
    """Analyse several files; unreadable ones are listed in `rejected` with their reason.

    Args:
        on_progress: called with (files done, files in all) after each file.
    """
    analyses, rejected = [], []
    for i, path in enumerate(paths):
        try:
            analyses.append(analyze_file(path, profile, final_bass_weight))
        except AurlError as error:
            rejected.append(RejectedFile(file=str(Path(path)), reason=str(error)))
        if on_progress is not None:
            on_progress(i + 1, len(paths))
    return AnalyzeResult(analyses=analyses, rejected=rejected)
