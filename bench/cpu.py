"""CPU accounting from /proc: per process (workers, backends), the whole machine, and a measured child."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from bench.config import (
    ROOT,
)

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int, *, user_only: bool = False) -> float | None:
    """utime + stime (or utime alone) of one process, in seconds."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + (0 if user_only else int(fields[12]))) / CLK_TCK


def cpu_of(pids: list[int]) -> dict[int, float]:
    return {pid: cpu for pid in pids if (cpu := proc_cpu(pid)) is not None}


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    # A process that appeared during the run counts from zero; one that vanished is lost (reported).
    return sum(after[p] - before.get(p, 0.0) for p in after)


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return total - idle, total


def run_measured(
    cmd: list[str], *, env: dict | None, out: Path, cwd: Path = ROOT, err: Path | None = None
) -> tuple[int, float, float, int]:
    """Run ``cmd`` with output to ``out``; return (exit code, wall s, CPU s, peak RSS KiB) of that child alone."""
    started = time.perf_counter()
    with out.open("wb") as stream, (err or out).open("ab") as err_stream:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=stream, stderr=err_stream if err else subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, time.perf_counter() - started, usage.ru_utime + usage.ru_stime, usage.ru_maxrss
