"""The version of aurl, in a bottom-layer module so that any layer may record it in its files."""

__version__ = "0.1.0.dev0"
