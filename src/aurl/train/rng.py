"""Random-number-generator states as JSON-able data, so a checkpoint holds them without pickle.

A state is a dict of the torch CPU generator (base64 of its bytes), every CUDA device's generator,
NumPy's legacy global generator and Python's `random`. Restoring it makes dropout, word dropout
and Gumbel noise continue exactly where the checkpointed run stood.
"""

from __future__ import annotations

import base64
import random
from typing import Any

import numpy as np
import torch


def _b64(tensor: torch.Tensor) -> str:
    return base64.b64encode(tensor.cpu().numpy().tobytes()).decode("ascii")


def _from_b64(text: str) -> torch.Tensor:
    return torch.from_numpy(np.frombuffer(base64.b64decode(text), dtype=np.uint8).copy())


def capture() -> dict[str, Any]:
    """Every generator's state, as JSON-able data."""
    np_state: tuple[Any, ...] = np.random.get_state()  # type: ignore[assignment]  # noqa: NPY002 - the legacy global generator
    py_version, py_internal, py_gauss = random.getstate()
    return {
        "torch": _b64(torch.get_rng_state()),
        "cuda": [_b64(s) for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else [],
        "numpy": {
            "kind": str(np_state[0]),
            "keys": np_state[1].tolist(),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {"version": py_version, "internal": list(py_internal), "gauss": py_gauss},
    }


def restore(state: dict[str, Any]) -> None:
    """Set every generator from `capture()`'s data (CUDA states only where devices exist)."""
    torch.set_rng_state(_from_b64(state["torch"]))
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([_from_b64(s) for s in cuda])
    n = state["numpy"]
    keys = np.asarray(n["keys"], dtype=np.uint32)
    np.random.set_state((n["kind"], keys, n["pos"], n["has_gauss"], n["cached_gaussian"]))  # noqa: NPY002
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))


def seed_all(seed: int) -> None:
    """Seed torch (CPU and CUDA), NumPy's global generator and Python's `random` from one integer."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - third-party code may use it
    random.seed(seed)
