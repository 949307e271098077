"""Music analysis: key, tempo and metre, chords, sections and phrases, melody and motifs.

result = analyze_file("chorale.mid")     # AnalysisResult (pydantic): key, chords, sections, ...
estimate_key(score).key.name             # "F# minor"
plot_analysis(score, result, "a.png")    # piano roll + self-similarity (needs matplotlib)
"""

from aurl.analyze.key import PROFILES, Key, KeyEstimate, estimate_key, windowed_keys
from aurl.analyze.plot import plot_analysis
from aurl.analyze.report import AnalyzeResult, RejectedFile, analyze_file, analyze_files, analyze_score
from aurl.analyze.result import AnalysisResult

__all__ = [
    "PROFILES",
    "AnalysisResult",
    "AnalyzeResult",
    "Key",
    "KeyEstimate",
    "RejectedFile",
    "analyze_file",
    "analyze_files",
    "analyze_score",
    "estimate_key",
    "plot_analysis",
    "windowed_keys",
]
