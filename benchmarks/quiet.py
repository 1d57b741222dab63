"""Was the machine quiet? The load record every timing benchmark keeps.

A timing taken beside other work is not a figure. The 1-minute load average alone cannot say so
at the end of a run: the benchmark itself keeps the cores busy, so its own load (about the core
count) is still in the average when it stops. So a record holds three numbers:

- ``load_start``: the 1-minute load average before the work starts;
- ``other_cores``: the CPU the rest of the machine used during the work, in cores
  (``/proc/stat``'s busy time minus this process's and its children's, over the wall time);
- ``load_end``: the 1-minute load average after a cool-down (90 s by default), once the
  benchmark's own contribution has decayed (the average forgets with a 1-minute time constant).

``loaded`` is true when any of them passes 1.5 (the load) or 0.25 (other cores).

    with QuietRecord() as quiet:
        ...timed work...
    report.update(quiet.as_dict())
"""

from __future__ import annotations

import os
import time
from typing import Any

MAX_LOAD = 1.5
MAX_OTHER_CORES = 0.25


def _busy_seconds() -> float | None:
    """CPU seconds the whole machine spent busy since boot (all cores), or None off Linux."""
    try:
        fields = open("/proc/stat").readline().split()[1:]
    except OSError:
        return None
    ticks = [int(v) for v in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    """CPU seconds of this process and its waited-for children."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class QuietRecord:
    """Context manager recording whether the machine was quiet around timed work."""

    def __init__(self, cooldown_s: float = 90.0):
        self.cooldown_s = cooldown_s
        self.record: dict[str, Any] = {}

    def __enter__(self) -> QuietRecord:
        self.record = {"load_start": round(os.getloadavg()[0], 2)}
        self._t0, self._busy0, self._own0 = time.monotonic(), _busy_seconds(), _own_seconds()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = max(time.monotonic() - self._t0, 1e-9)
        busy = _busy_seconds()
        if busy is not None and self._busy0 is not None:
            other = (busy - self._busy0) - (_own_seconds() - self._own0)
            self.record["other_cores"] = round(max(other, 0.0) / wall, 3)
        time.sleep(self.cooldown_s)
        self.record["load_end"] = round(os.getloadavg()[0], 2)
        self.record["cooldown_s"] = self.cooldown_s
        self.record["loaded"] = (max(self.record["load_start"], self.record["load_end"]) > MAX_LOAD
                                 or self.record.get("other_cores", 0.0) > MAX_OTHER_CORES)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.record)

    def line(self) -> str:
        """One line for the console."""
        r = self.record
        other = f", other processes {r['other_cores']:.2f} cores" if "other_cores" in r else ""
        return (f"load average {r['load_start']} at the start, {r['load_end']} after a "
                f"{r['cooldown_s']:g} s cool-down{other}"
                + ("  ** LOADED: not a figure **" if r["loaded"] else ""))
