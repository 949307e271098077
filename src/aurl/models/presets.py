"""Named model sizes and the parameter count of each part of a model.

The sizes themselves live in `aurl.config.MODEL_PRESETS` (config is the bottom layer and
`ModelConfig.preset` reads them); this module counts what they build.
"""

from __future__ import annotations

from torch import nn

from aurl.config import MODEL_PRESETS

PRESET_NAMES = tuple(MODEL_PRESETS)
PARTS = ("embedding", "encoder", "latent", "decoder", "discriminator", "heads")

# First matching prefix wins. The decoder's per-layer latent skips count as latent, not decoder.
_RULES = (
    ("encoder.to_", "latent"),
    ("condition.", "latent"),
    (".skip.", "latent"),
    ("encoder.", "encoder"),
    ("embed.", "embedding"),
    ("beat.", "embedding"),
    ("decoder.", "decoder"),
    ("discriminator.", "discriminator"),
    ("head.", "heads"),
    ("balancer.", "heads"),
)


def part_of(name: str) -> str:
    """The part a parameter belongs to, from its dotted name."""
    for pattern, part in _RULES:
        if name.startswith(pattern) or (pattern.startswith(".") and pattern in name):
            return part
    raise ValueError(f"parameter {name!r} belongs to no part; add a rule to presets._RULES")


def parameter_table(model: nn.Module) -> dict[str, int]:
    """Parameters per part (tied weights counted once, under embedding) and their "total"."""
    counts = dict.fromkeys(PARTS, 0)
    for name, p in model.named_parameters():  # named_parameters() yields a tied tensor once
        counts[part_of(name)] += p.numel()
    counts["total"] = sum(counts.values())
    return counts


def format_parameter_table(counts: dict[str, int]) -> str:
    """The table as aligned text lines, e.g. for logs and docs."""
    width = max(len(k) for k in counts)
    return "\n".join(f"{part:<{width}}  {n:>12,}" for part, n in counts.items())
