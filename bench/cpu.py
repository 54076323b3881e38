"""CPU accounting from /proc: per process (workers, backends), the whole machine, and a measured child."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
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
    run = run_child(cmd, env=env, out=out, cwd=cwd, err=err)
    return run.code, run.wall_s, run.user_s + run.sys_s, run.rss_kib


@dataclass(frozen=True)
class ChildRun:
    code: int
    wall_s: float
    user_s: float
    sys_s: float
    rss_kib: int


def run_child(cmd: list[str], *, env: dict | None, out: Path, cwd: Path = ROOT, err: Path | None = None) -> ChildRun:
    """``run_measured`` with user and system CPU apart (``os.wait4`` rusage of that child alone)."""
    started = time.perf_counter()
    with out.open("wb") as stream, (err or out).open("ab") as err_stream:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=stream, stderr=err_stream if err else subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    return ChildRun(proc.returncode, time.perf_counter() - started, usage.ru_utime, usage.ru_stime, usage.ru_maxrss)


def loadavg() -> list[float]:
    return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]


class BackendSampler:
    """CPU of the PostgreSQL backends of one database while a command runs (client and parallel workers).

    A backend's counters vanish with it, so they are sampled every ``interval`` seconds and the last
    sample of each is kept: a lower bound, short by at most one interval of each backend's CPU.
    """

    def __init__(self, pids: Callable[[], list[int]], interval: float = 0.5) -> None:
        self._pids = pids
        self._interval = interval
        self._seen: dict[int, float] = {}
        self._before: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> BackendSampler:
        self._before = cpu_of(self._pids())
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._seen.update(cpu_of(self._pids()))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def cpu_s(self) -> float:
        return round(cpu_delta(self._before, self._seen), 2)
