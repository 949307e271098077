"""aurl: symbolic music generation. MIDI in, Transformer / VAE / VAE-GAN models, new music out.

The names a user needs are importable from here (`aurl.read_midi`, `aurl.encode`, ...). They load on
first use, so `import aurl` stays light and never imports torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from aurl.version import __version__

# public name -> the module that defines it. Functions named like a subpackage (train, sample)
# stay in it (`from aurl.sample import sample`): here they would clash with `import aurl.sample`.
_EXPORTS = {
    "read_midi": "aurl.midi",
    "write_midi": "aurl.midi",
    "encode": "aurl.tokens",
    "decode": "aurl.tokens",
    "preprocess": "aurl.data.preprocess",
    "load_settings": "aurl.config",
    "analyze_file": "aurl.analyze",
    "evaluate_sets": "aurl.evaluate",
    "export_model": "aurl.export",
}

__all__ = [
    "__version__",
    "analyze_file",
    "decode",
    "encode",
    "evaluate_sets",
    "export_model",
    "load_settings",
    "preprocess",
    "read_midi",
    "write_midi",
]

if TYPE_CHECKING:
    from aurl.analyze import analyze_file
    from aurl.config import load_settings
    from aurl.data.preprocess import preprocess
    from aurl.evaluate import evaluate_sets
    from aurl.export import export_model
    from aurl.midi import read_midi, write_midi
    from aurl.tokens import decode, encode


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'aurl' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
