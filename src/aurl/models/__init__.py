"""The aurl model: MusicTransformerVAEGAN in transformer, vae and vae_gan modes.

Shape legend used in every docstring of this package:

    B  batch size
    T  tokens (sequence length); T_new the tokens of one incremental `step`
    V  vocabulary size (774 for aurl's event vocabulary)
    D  model width (d_model)
    Z  latent size (Zg global, Zb per bar, Zf per fine window); NB bars, NW windows
    H  attention heads, dh = D / H

The model never imports aurl.tokens: it learns what tokens mean for time from a `TokenTable`.
"""

from aurl.models.attention import LayerCache
from aurl.models.losses import LOSS_TERMS
from aurl.models.model import DecodeCache, MusicTransformerVAEGAN
from aurl.models.positions import BeatState
from aurl.models.presets import PRESET_NAMES, format_parameter_table, parameter_table
from aurl.models.table import TokenTable
from aurl.models.vae import Latent
from aurl.models.weights import load_weights, read_metadata, save_weights

__all__ = [
    "LOSS_TERMS",
    "PRESET_NAMES",
    "BeatState",
    "DecodeCache",
    "LayerCache",
    "Latent",
    "MusicTransformerVAEGAN",
    "TokenTable",
    "format_parameter_table",
    "load_weights",
    "parameter_table",
    "read_metadata",
    "save_weights",
]
