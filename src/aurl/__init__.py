"""aurl: symbolic music generation. MIDI in, Transformer / VAE / VAE-GAN models, new music out."""

__version__ = "0.1.0.dev0"
