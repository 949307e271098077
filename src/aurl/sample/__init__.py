"""Sampling: logits processors, constraints as masks, KV-cached batched decoding and beam search.

    from aurl.sample import sample, generate_ids, TorchDecoder
    result = sample(load_settings(overrides={"sample.key": "D minor"}), out=Path("song.mid"))

`generate_ids(decoder, ...)` and `beam_search(decoder, ...)` run on any `Decoder` (decoder.py):
the PyTorch model through `TorchDecoder`, or an exported one that implements the same protocol.
"""

from aurl.sample.beam import beam_search
from aurl.sample.checkpoint import LoadedModel, load_checkpoint
from aurl.sample.constraints import (
    Constraint,
    ConstraintSet,
    FixedTempo,
    FixedTimeSignature,
    MaxPolyphony,
    PitchRange,
    Programs,
    Scale,
    build_constraints,
)
from aurl.sample.decoder import Decoder, LatentDecoder, TorchDecoder
from aurl.sample.fastpath import FastDecoder
from aurl.sample.generate import Generated, generate, generate_ids, row_generators
from aurl.sample.latent import interpolate, slerp
from aurl.sample.processors import (
    LogitsProcessor,
    ModelTiming,
    RepetitionPenalty,
    Temperature,
    TopK,
    TopP,
    build_processors,
)
from aurl.sample.result import SampledPiece, SampleResult
from aurl.sample.sampler import sample
from aurl.sample.stopping import StopRule

__all__ = [
    "Constraint",
    "ConstraintSet",
    "Decoder",
    "FastDecoder",
    "FixedTempo",
    "FixedTimeSignature",
    "Generated",
    "LatentDecoder",
    "LoadedModel",
    "LogitsProcessor",
    "MaxPolyphony",
    "ModelTiming",
    "PitchRange",
    "Programs",
    "RepetitionPenalty",
    "SampleResult",
    "SampledPiece",
    "Scale",
    "StopRule",
    "Temperature",
    "TopK",
    "TopP",
    "TorchDecoder",
    "beam_search",
    "build_constraints",
    "build_processors",
    "generate",
    "generate_ids",
    "interpolate",
    "load_checkpoint",
    "row_generators",
    "sample",
    "slerp",
]
