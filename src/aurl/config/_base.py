"""What every settings section shares: the section model config and the machine's core count."""

from __future__ import annotations

import os

from pydantic import ConfigDict

# Frozen with extra="forbid": a typo in a config file is an error, not a silent default.
SECTION = ConfigDict(frozen=True, extra="forbid")


def available_cores() -> int:
    """Cores this process may run on (at least 1)."""
    # Affinity, not os.cpu_count(): a container or `taskset` may grant fewer cores than the machine has.
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1
