"""The errors of the export stage; each is one line for a user, and the command exits 1 on them."""

from __future__ import annotations

import importlib
from types import ModuleType

from aurl.errors import AurlError

INSTALL_HINT = "install the export extra: pip install 'aurl[export]'"


class ExportError(AurlError):
    """An export cannot be made or used: not an aurl ONNX step, or asked for what it cannot do."""


class MissingDependencyError(ExportError):
    """An optional package of the `export` extra (onnx, onnxruntime) is not installed."""


class VerificationError(ExportError):
    """An exported model does not reproduce the PyTorch model within the tolerance."""


def require(package: str, purpose: str) -> ModuleType:
    """Import an optional package of the export extra.

    Args:
        package: "onnx" or "onnxruntime" (or one of their modules).
        purpose: what needs it, for the message ("ONNX export", "--verify").

    Raises:
        MissingDependencyError: the package is not installed.
    """
    try:
        return importlib.import_module(package)
    except ImportError:
        top = package.split(".")[0]
        raise MissingDependencyError(
            f"{purpose} needs the '{top}' package, which is not installed; {INSTALL_HINT}"
        ) from None
