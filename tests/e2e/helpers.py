"""Helpers of the end-to-end server tests: start the real model server in a subprocess on free ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
GOLDEN = REPO_ROOT / "tests" / "data" / "golden"
MODEL = "arrest-predictor"


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child process: no ARREST_* / MLFLOW_* leaking in, one thread per library.

    Where this machine forbids writing bytecode next to the sources (``PYTHONDONTWRITEBYTECODE``), the child
    compiles into a private cache instead: starting the server then takes ~5 s instead of ~20 s.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARREST_", "MLFLOW_"))}
    if env.pop("PYTHONDONTWRITEBYTECODE", None):
        env["PYTHONPYCACHEPREFIX"] = str(REPO_ROOT / ".pytest_cache" / "pycache")
    env.update({"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    env.update(extra)
    return env


@dataclass
class Process:
    """A child process with its output in a file."""

    proc: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def spawn(argv: Sequence[str], log: Path, env: dict[str, str]) -> Process:
    """Start ``argv`` in the repository root, output to ``log``."""
    handle = open(log, "wb")  # noqa: SIM115 - owned by the child for its lifetime
    proc = subprocess.Popen(list(argv), cwd=REPO_ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT)
    handle.close()
    return Process(proc, log)


@dataclass
class Server(Process):
    """A running ``python -m arrest_server``."""

    http_port: int = 0
    grpc_port: int = 0
    session: requests.Session = field(default_factory=requests.Session)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def infer_url(self) -> str:
        return f"{self.url}/v2/models/{MODEL}/infer"

    def wait_ready(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"server exited with {self.proc.returncode}:\n{self.output()[-4000:]}")
            try:
                if requests.get(f"{self.url}/v2/models/{MODEL}/ready", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        pytest.fail(f"server not ready after {timeout:.0f}s:\n{self.output()[-4000:]}")

    def metrics(self) -> str:
        return self.session.get(f"{self.url}/metrics", timeout=10).text

    def wait_for(self, *needles: str, timeout: float = 30.0) -> None:
        """Wait until ``/metrics`` shows every needle (the server applied a serving change)."""
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.metrics()
            if all(n in text for n in needles):
                return
            time.sleep(0.1)
        missing = [n for n in needles if n not in text]
        pytest.fail(f"server did not apply the change within {timeout:.0f}s; missing {missing}")


def start_server(args: Sequence[str], log: Path, **env: str) -> Server:
    http_port, grpc_port = free_port(), free_port()
    argv = [
        sys.executable,
        "-m",
        "arrest_server",
        "--http_port",
        str(http_port),
        "--grpc_port",
        str(grpc_port),
    ]
    base = spawn([*argv, *args], log, child_env(**env))
    return Server(base.proc, base.log, http_port, grpc_port)


@dataclass
class Stack:
    """Everything the tests talk to."""

    golden: Server
    state: Server
    data_dir: Path
    versions: dict[str, str]
    no_champion: Process
