"""Worker processes of the bench, a CPU meter over processes, and py-spy."""

import ctypes
import json
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


_PR_SET_PDEATHSIG = 1
_live: list[subprocess.Popen[Any]] = []


def _die_with_parent() -> None:
    """In the child: SIGTERM it when the bench dies, so no worker outlives a crashed run."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(args: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
    proc = subprocess.Popen(args, preexec_fn=_die_with_parent, **kwargs)
    _live.append(proc)
    return proc


def stop_all() -> None:
    """Stop what is still running (after a failure), each by its own pid."""
    for proc in reversed(_live):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in _live:
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
    _live.clear()


class Worker:
    """`python -m <argv> [CONFIG]`: READY on its stdout when set up, its output file when done."""

    def __init__(self, tmp: Path, name: str, argv: list[str], cfg: dict[str, Any] | None = None) -> None:
        self.name = name
        self.out = tmp / f"{name}.out.json"
        self.log = tmp / f"{name}.log"
        self.has_output = cfg is not None
        args = [sys.executable, "-m", *argv]
        if cfg is not None:
            cfg_path = tmp / f"{name}.json"
            cfg_path.write_text(json.dumps({**cfg, "out": str(self.out)}))
            args.append(str(cfg_path))
        with open(self.log, "ab") as log:
            self.proc = spawn(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float = 120) -> "Worker":
        assert self.proc.stdout is not None
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            readable, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if readable:
                line = self.proc.stdout.readline()
                if line.strip() == "READY":
                    return self
            if self.proc.poll() is not None:
                break
        self.proc.kill()
        raise RuntimeError(f"{self.name} not ready: {self.log.read_text(errors='replace')[-3000:]}")

    def stop(self) -> dict[str, Any]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.result()

    def result(self, timeout: float = 120) -> dict[str, Any]:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise RuntimeError(f"{self.name} did not finish: {self.log.read_text(errors='replace')[-3000:]}") from None
        if self.proc.returncode != 0 or (self.has_output and not self.out.exists()):
            raise RuntimeError(f"{self.name} failed: {self.log.read_text(errors='replace')[-3000:]}")
        return json.loads(self.out.read_text()) if self.has_output else {}


def _seconds(proc: psutil.Process, children: bool = False) -> float:
    try:
        t = proc.cpu_times()
    except psutil.Error:
        return 0.0
    return t.user + t.system + ((t.children_user + t.children_system) if children else 0.0)


def _service_seconds(name: str) -> float:
    """All processes of a service; for PostgreSQL, also its ended backends (through the postmaster)."""
    total = 0.0
    for proc in psutil.process_iter(["name", "ppid"]):
        if proc.info["name"] != name:
            continue
        try:
            parent_is_same = psutil.Process(proc.info["ppid"]).name() == name
        except psutil.Error:
            parent_is_same = False
        total += _seconds(proc, children=not parent_is_same)
    return total


class CpuMeter:
    """CPU used between start() and stop(), in percent of one core, per group of processes."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = {k: [psutil.Process(p) for p in pids] for k, pids in groups.items()}

    def _read(self) -> dict[str, float]:
        out = {k: sum(_seconds(p) for p in procs) for k, procs in self.groups.items()}
        out["postgres"] = _service_seconds("postgres")
        out["redis"] = _service_seconds("redis-server")
        t = psutil.cpu_times()
        out["machine"] = t.user + t.system + t.nice + getattr(t, "irq", 0) + getattr(t, "softirq", 0)
        return out

    def start(self) -> "CpuMeter":
        self.t0, self.c0 = time.monotonic(), self._read()
        return self

    def stop(self) -> dict[str, float]:
        wall, c1 = time.monotonic() - self.t0, self._read()
        self.used = {k: c1[k] - self.c0[k] for k in c1}  # CPU seconds
        # Whatever else ran meanwhile (this machine is shared): the machine's total less what we know.
        self.used["others"] = max(0.0, self.used["machine"] - sum(v for k, v in self.used.items() if k != "machine"))
        return {f"{k}_cpu_pct": round(100 * v / wall, 1) for k, v in self.used.items()}


class PySpy:
    """py-spy record --format raw (collapsed stacks; speedscope opens them) until stop()."""

    def __init__(self, pid: int, out: Path, rate: int = 100, idle: bool = False, gil: bool = False) -> None:
        self.out, self.rate = out, rate
        args = [str(BIN / "py-spy"), "record", "-p", str(pid), "-o", str(out), "--format", "raw"]
        # --nonblocking: pausing a process of 200 threads 100 times a second would slow it tenfold.
        args += ["--rate", str(rate), "--threads", "--nonblocking"]
        args += (["--idle"] if idle else []) + (["--gil"] if gil else [])
        self.proc = spawn(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # attach before the load starts
        self.started = time.monotonic()

    def stop(self) -> float:
        seconds = time.monotonic() - self.started
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        return seconds
