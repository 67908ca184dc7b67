"""CPU time of processes from Linux /proc, for the benchmarks' CPU-per-unit figures.

Wall-clock rates on a machine shared with other work say little; the CPU time a process used does not depend
on what else runs (much), so the benchmarks report it beside their rates.
"""
from __future__ import annotations

import os
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat from field 3 (state) on: index i is field i + 3; None when the process is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()


def cpu_seconds(*pids: int | None) -> float:
    """User + system CPU seconds used so far by these processes (those gone or unknown count 0)."""
    total = 0.0
    for pid in pids:
        f = stat_fields(pid) if pid is not None else None
        if f is not None:
            total += (int(f[11]) + int(f[12])) / TICK
    return total
