"""Settings of `aurl sample`: the sampling strategy, the stopping rule and the musical constraints."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, Field

from aurl.config._base import SECTION


class SampleConfig(BaseModel):
    """How new music is drawn from a model: strategy, length, constraints and output.

    Strings such as `key`, `scale` and `pitch_range` are parsed when the constraints are built
    (`aurl.sample.constraints`), which raises a one-line ConfigError for an impossible one.
    """

    model_config = SECTION

    checkpoint: str = Field(
        default="bundled",
        description="The model: a model.safetensors file, a training run folder (its model.safetensors) "
        "or 'bundled' for the model shipped with aurl.",
    )
    num: int = Field(default=1, ge=1, description="Pieces to write, generated in parallel as one batch.")
    seed: int | None = Field(
        default=None,
        ge=0,
        description="Random seed; the same seed and settings give byte-identical MIDI. "
        "Default: a fresh seed, written into the output so that the piece can be made again.",
    )
    temperature: float = Field(
        default=1.0, gt=0.0, description="Divides the logits: below 1 is safer, above 1 more adventurous."
    )
    top_k: int = Field(default=0, ge=0, description="Sample among the k likeliest tokens only; 0 is off.")
    top_p: float = Field(
        default=1.0,
        gt=0.0,
        le=1.0,
        description="Nucleus sampling: draw among the likeliest tokens whose mass reaches p; 1 is off.",
    )
    timing: Literal["shaped", "model"] = Field(
        default="shaped",
        description="How far time moves on: 'shaped', temperature, top-k, top-p and the repetition "
        "penalty act on every token alike; 'model', they decide whether time moves on, and the model's "
        "own probabilities how far (rare durations stay as common as in the music it learnt).",
    )
    repetition_penalty: float = Field(
        default=1.0,
        ge=1.0,
        description="Divides the logits of tokens seen in the last repetition_window tokens; 1 is off.",
    )
    repetition_window: int = Field(
        default=64, ge=1, description="How many recent tokens the repetition penalty looks back on."
    )
    beam: int = Field(
        default=1,
        ge=1,
        description="Beam search with this many beams instead of sampling (deterministic); 1 samples.",
    )
    length_penalty: float = Field(
        default=1.0,
        ge=0.0,
        description="Beam search ranks a finished piece by log-probability / length**length_penalty.",
    )
    max_tokens: int = Field(
        default=2048,
        ge=8,
        description="Most new tokens per piece; the music ends early enough to close its notes within it.",
    )
    bars: int | None = Field(default=None, ge=1, description="Stop after this many new bars.")
    length: int | None = Field(
        default=None, ge=8, description="Stop after about this many new tokens (at most this many)."
    )
    seconds: float | None = Field(
        default=None, gt=0.0, description="Stop after this many seconds of new music (through the tempo)."
    )
    key: str | None = Field(
        default=None,
        description="Keep pitched notes in this key, e.g. 'D minor', 'F# major', 'Bb dorian' or 'G' "
        "(major); drums are exempt.",
    )
    scale: str | None = Field(
        default=None,
        description="Scale over the key's tonic (C without --key): major, minor, dorian, phrygian, lydian, "
        "mixolydian, locrian, harmonic_minor, melodic_minor, pentatonic, minor_pentatonic, blues, "
        "chromatic, or pitch classes such as 'C,D,Eb,G,A'.",
    )
    pitch_range: str | None = Field(
        default=None,
        description="Lowest and highest pitch of pitched notes, names or MIDI numbers: 'C3-C6' or '48-84'.",
    )
    max_polyphony: int | None = Field(
        default=None, ge=1, description="Most notes sounding at once, over all tracks."
    )
    max_voice_polyphony: int | None = Field(
        default=None,
        ge=1,
        description="Most notes sounding at once in one track; 1 makes every track a monophonic voice.",
    )
    tempo: float | None = Field(
        default=None, gt=0.0, description="Tempo in beats per minute (quarter notes); no tempo changes."
    )
    time_signature: str | None = Field(
        default=None, description="Metre such as '3/4' or '6/8'; no metre changes."
    )
    programs: tuple[int, ...] | None = Field(
        default=None,
        description="General MIDI programs (0-127; 128 is drums) that new notes may be played on.",
    )
    steps: int = Field(
        default=5,
        ge=2,
        description="--interpolate: pieces from the first input to the second, both ends included.",
    )
    format: Literal["midi", "musicxml"] = Field(
        default="midi", description="Output format: midi, or musicxml (needs the 'musicxml' extra, music21)."
    )
    precision: Literal["float32", "float16", "bfloat16"] = Field(
        default="float32",
        description="Precision of the model's matrices while sampling: float32 (exact), or float16 / "
        "bfloat16 (about twice as fast for a large model on a CPU; the logits change slightly).",
    )
    device: str = Field(
        default="cpu",
        description="Torch device of the model (cpu, cuda, cuda:1, mps); tokens are always drawn on the CPU.",
    )
    compile: bool = Field(
        default=False,
        description="Run each token's step through torch.compile (full-attention models; on a CUDA device "
        "inside its graph): about twice the tokens/s at batch 1 on a GPU, 10-20% more on a CPU, after 20 "
        "to 60 s of compilation (a CPU needs a C++ compiler), so for long pieces or many of them.",
    )


# A model file may record how it is best sampled (see `recommended`), under this metadata key.
RECOMMENDED_KEY = "aurl.sample_recommended"
# Settings that describe one run of `aurl sample` rather than how a model should be sampled.
_PER_RUN = frozenset({"checkpoint", "num", "seed", "steps", "format", "precision", "device", "compile"})


def recommended(config: SampleConfig) -> dict[str, Any]:
    """The settings of `config` that differ from aurl's defaults, per-run ones left out.

    `aurl train` stores them in the model file it writes, so a recipe's `[sample]` section (e.g.
    `max_voice_polyphony = 1` for four-part chorales) travels with the model it trained.
    """
    default = SampleConfig().model_dump(mode="json")
    given = config.model_dump(mode="json")
    return {k: v for k, v in given.items() if k not in _PER_RUN and v != default[k]}


def with_recommended(config: SampleConfig, values: Mapping[str, Any]) -> SampleConfig:
    """`config` with a model's recommended settings for every field the user left unset.

    Settings from a flag, the environment or a config file always win over the model's.

    Raises:
        ValueError: the recommended values are not valid settings.
    """
    chosen = {k: v for k, v in values.items() if k in SampleConfig.model_fields and k not in _PER_RUN}
    user = config.model_dump(include=config.model_fields_set)
    return SampleConfig.model_validate({**chosen, **user})
