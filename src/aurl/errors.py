"""The errors aurl raises on purpose: each message is fit to show a user as it is, on one line."""

from __future__ import annotations


class AurlError(Exception):
    """Base of every error aurl raises for a user to read.

    The message names what failed, the offending value and what to try. `exit_code` is what the
    command-line interface exits with when this error reaches it.
    """

    exit_code: int = 1


class ConfigError(AurlError):
    """A setting, flag, environment variable or config file is wrong (exit code 2)."""

    exit_code = 2


class UsageError(AurlError):
    """A command was called with arguments that cannot work together (exit code 2)."""

    exit_code = 2


class MidiError(AurlError):
    """A MIDI file cannot be read or written; the message starts with the file's name."""


class TokenizeError(AurlError):
    """A score cannot be turned into tokens, or tokens into a score."""


class DataError(AurlError):
    """A dataset, cache or corpus is missing or inconsistent."""


class CheckpointError(AurlError):
    """A checkpoint or model file is missing, corrupt or does not fit this version of aurl."""
