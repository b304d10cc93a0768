"""How a local pipeline run (``kfp.local``) looks to a person: one line per step, each step's log in a file.

``kfp.local``'s ``SubprocessRunner`` runs every task as a child process and prints its output (indented), then
its inputs and outputs: ~1,600 lines for one training run. Inside :meth:`LocalRun.capture` every task's output
goes to ``<run folder>/logs/<step>.log`` instead, and the console gets:

- one line per step as it finishes: name, seconds, and the summary the step logged itself
  (:func:`chicago_arrest.steps.log_summary`);
- while steps run, on a terminal, a live line (``rich``): the running steps, their seconds and the newest message
  of their logs;
- on a failure, ``FAILED`` on the step's line; :func:`chicago_arrest.pipelines.run.failure_message` then names the
  step, its error line and its log file.

``verbose=True`` streams everything as ``kfp.local`` does and still writes the log files. The mechanism is the one
function ``kfp.local`` runs a task process with (``subprocess_task_handler.run_local_subprocess``), so it serves
every pipeline run locally. ``kfp.local``'s own messages go to ``logs/kfp.log``; HTML artifacts
(``system.HTML``) get a ``<file>.html`` copy next to them, which a browser opens as a page.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.live import Live
from rich.text import Text

from chicago_arrest.core.files import write_atomically
from chicago_arrest.steps import SUMMARY_PREFIX

#: The input parameter that names an iteration of a step in a loop (``train logreg``), by component name.
LABEL_PARAMETER: dict[str, str] = {"train": "model_type"}
#: How ``run_step`` reports an expected failure (``error: <type>: <message>``).
ERROR_PREFIX = "error: "


@dataclass
class Step:
    """One task of a local run, as the console shows it.

    Attributes:
        task: Component (task) name, e.g. ``train``.
        label: What the console calls it, e.g. ``train logreg``.
        log: Its full output.
        started: ``time.monotonic()`` at its start.
        seconds: How long it ran (once finished).
        ok: Whether it succeeded (``None`` while running).
        summary: The one-line summary it logged.
        error: Its error line (failure): its ``error: ...`` line, else its last line.
        last_line: The newest message of its log (for the live line).
        cpu_seconds: CPU time (user + system) of its process and of the processes it waited for.
        peak_rss_mb: Peak resident memory of its process, or of the largest process it waited for (MB).
    """

    task: str
    label: str
    log: Path
    started: float
    seconds: float | None = None
    ok: bool | None = None
    summary: str = ""
    error: str = ""
    last_line: str = ""
    cpu_seconds: float | None = None
    peak_rss_mb: float | None = None

    def resources(self) -> dict[str, Any]:
        """Wall time, CPU time and peak resident memory (one entry of ``logs/steps.json``)."""
        return {
            "step": self.label,
            "ok": self.ok,
            "wall_s": None if self.seconds is None else round(self.seconds, 2),
            "cpu_s": None if self.cpu_seconds is None else round(self.cpu_seconds, 2),
            "peak_rss_mb": None if self.peak_rss_mb is None else round(self.peak_rss_mb, 1),
        }


_LOG_LINE = re.compile(r"^(?:\[KFP Executor [^\]]*\]|\d\d:\d\d:\d\d \w+ [\w.]+):\s+(.+)$")
_EXECUTOR_CHATTER = (
    "Looking for component",
    "Loading KFP component",
    "Got executor_input",
    "Wrote executor output",
)


def progress_message(line: str) -> str | None:
    """The message of a step's log line; ``None`` for KFP's own chatter, JSON dumps and other output."""
    match = _LOG_LINE.match(line.strip())
    if match is None or match[1].startswith(_EXECUTOR_CHATTER):
        return None
    return match[1]


#: Per-step wall time, CPU time and peak memory of a local run, in ``<run>/logs/``.
STEPS_JSON = "steps.json"


def _wait_with_usage(process: subprocess.Popen[str], step: Step) -> int:
    """Wait for a step's process; record its CPU time and peak memory on ``step`` (where ``os.wait4`` exists)."""
    wait4 = getattr(os, "wait4", None)
    if wait4 is None:  # pragma: no cover - Windows
        return process.wait()
    _, status, usage = wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    step.cpu_seconds = usage.ru_utime + usage.ru_stime
    # ru_maxrss: kilobytes on Linux, bytes on macOS.
    step.peak_rss_mb = usage.ru_maxrss / (2**20 if sys.platform == "darwin" else 2**10)
    return process.returncode


def copy_html_artifacts(executor_input: dict[str, Any]) -> list[Path]:
    """Copy every HTML output artifact of a finished task to ``<file>.html``, which a browser shows as a page."""
    copies = []
    for spec in (executor_input.get("outputs", {}).get("artifacts") or {}).values():
        for artifact in spec.get("artifacts") or []:
            if artifact.get("type", {}).get("schemaTitle") != "system.HTML":
                continue
            path = Path(artifact["uri"])
            if path.is_file() and path.suffix != ".html":
                copies.append(Path(shutil.copyfile(path, path.with_name(path.name + ".html"))))
    return copies


class LocalRun:
    """Capture a ``kfp.local`` run: per-step log files, one console line per step, live progress.

    Call the pipeline inside ``with run.capture():``; ``kfp.local.init`` must use ``SubprocessRunner`` and
    ``pipeline_root=root`` (the runner's task function is replaced for the block, so DockerRunner is not
    covered).

    Args:
        root: The ``pipeline_root`` given to ``kfp.local.init``.
        verbose: Stream everything as ``kfp.local`` does (the log files are written too).
        stream: Where the console lines go (default: ``sys.stdout`` when constructed).
        live: Show the live progress line (default: when ``stream`` is a terminal and not ``verbose``).
    """

    def __init__(
        self, root: Path, *, verbose: bool = False, stream: TextIO | None = None, live: bool | None = None
    ) -> None:
        self.root = root.resolve()
        self.verbose = verbose
        stream = stream or sys.stdout
        self.console = Console(
            file=stream,
            force_terminal=live or None,
            highlight=False,
            markup=False,
            emoji=False,
            soft_wrap=True,
        )
        if live is None:
            live = not verbose and self.console.is_terminal and not self.console.is_dumb_terminal
        self.live = live
        self.steps: list[Step] = []
        self.run_dir: Path | None = None
        self._lock = threading.Lock()
        self._kfp_log: Path | None = None
        self._live: Live | None = None

    def say(self, text: str) -> None:
        """Print a line to the console, above the live line (redrawn first: a finished step leaves it)."""
        if self._live is not None:
            self._live.refresh()
        self.console.print(text)

    def header(self, pipeline: str, target: str, arguments: dict[str, Any], width: int = 110) -> None:
        """The first lines: pipeline, target, parameters, where the logs go."""
        params = ", ".join(
            f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in arguments.items()
        )
        wrapped = textwrap.wrap(params, width - 13, break_on_hyphens=False) or [""]
        self.say(f"pipeline    {pipeline} on {target} (kfp.local: each step a subprocess)")
        self.say(f"parameters  {wrapped[0]}")
        for line in wrapped[1:]:
            self.say(f"            {line}")
        self.say(
            f"logs        {self.root}/<run>/logs/<step>.log"
            + ("" if self.verbose else "  (VERBOSE=1 streams them here)")
        )

    def _live_line(self) -> Text:
        """The running steps with their seconds, and the newest message of the last one that logged any."""
        with self._lock:
            running = [s for s in self.steps if s.ok is None]
        now = time.monotonic()
        names = " · ".join(f"{s.label} {now - s.started:.0f} s" for s in running)
        last = next((s.last_line for s in reversed(running) if s.last_line), "")
        text = f"  … {names}" + (f"  | {last}" if last else "") if running else ""
        return Text(text, no_wrap=True, overflow="ellipsis")

    # ---------------------------------------------------------------------------------------------- tasks

    def _start(self, executor_input: dict[str, Any]) -> Step:
        task_dir = Path(executor_input["outputs"]["outputFile"]).resolve().parent
        relative = task_dir.relative_to(self.root).parts
        task = task_dir.name
        params = (executor_input.get("inputs") or {}).get("parameterValues") or {}
        if LABEL_PARAMETER.get(task) in params:
            label = f"{task} {params[LABEL_PARAMETER[task]]}"
        else:
            iteration = next((m[1] for p in relative if (m := re.search(r"-iteration-(\d+)$", p))), None)
            label = task if iteration is None else f"{task} #{iteration}"
        with self._lock:
            self.run_dir = self.root / relative[0]
            logs = self.run_dir / "logs"
            logs.mkdir(parents=True, exist_ok=True)
            stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", label)
            log, n = logs / f"{stem}.log", 1
            while log.exists():
                n += 1
                log = logs / f"{stem}-{n}.log"
            log.touch()
            step = Step(task, label, log, time.monotonic())
            self.steps.append(step)
        return step

    def run_task(self, full_command: list[str], env_vars: dict[str, str] | None = None) -> int:
        """Run one task process (in place of ``kfp.local``'s): its output to its log file; its line when done."""
        executor_input = dict(json.loads(full_command[full_command.index("--executor_input") + 1]))
        step = self._start(executor_input)
        env = {**os.environ, **env_vars} if env_vars else None
        last_output = ""
        with (
            step.log.open("w", encoding="utf-8") as log,
            subprocess.Popen(
                full_command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1, env=env
            ) as process,
        ):
            assert process.stdout is not None
            for line in process.stdout:
                log.write(line)
                log.flush()
                last_output = line.strip() or last_output
                if last_output.startswith(ERROR_PREFIX):
                    step.error = last_output.removeprefix(ERROR_PREFIX)
                elif (message := progress_message(line)) is not None:
                    if message.startswith(SUMMARY_PREFIX):
                        step.summary = message.removeprefix(SUMMARY_PREFIX)
                    else:
                        step.last_line = message
                if self.verbose:
                    print(line, end="")  # kfp.local indents this print
            code = _wait_with_usage(process, step)
        step.seconds = time.monotonic() - step.started
        if code == 0:
            copy_html_artifacts(executor_input)
        else:
            step.error = step.error or last_output or "no output"
        step.ok = code == 0
        if not self.verbose:
            self.say(
                f"  {step.label:<22} {step.seconds:6.1f} s  {step.summary if step.ok else 'FAILED'}".rstrip()
            )
        self._write_resources()
        return code

    def _write_resources(self) -> None:
        """``<run>/logs/steps.json``: wall, CPU and peak memory of every finished step (``bench`` reads it)."""
        # Under the lock: parallel tasks (ParallelFor) finish in threads of their own at the same moment.
        with self._lock:
            if self.run_dir is None:
                return
            rows = [s.resources() for s in self.steps if s.ok is not None]
            write_atomically(self.run_dir / "logs" / STEPS_JSON, json.dumps(rows, indent=1).encode("utf-8"))

    @property
    def failed(self) -> Step | None:
        """The first step that failed, if any."""
        return next((s for s in self.steps if s.ok is False), None)

    # ---------------------------------------------------------------------------------------------- scope

    @contextlib.contextmanager
    def capture(self) -> Iterator[LocalRun]:
        """Route every task of ``kfp.local`` through :meth:`run_task` while the block runs.

        Quiet (not verbose): ``kfp.local``'s own messages (stdout and stderr of this process) go to a file,
        moved to ``<run>/logs/kfp.log`` at the end.
        """
        import builtins

        from kfp.local import subprocess_task_handler

        original = subprocess_task_handler.run_local_subprocess
        # kfp.local indents a task's output by swapping builtins.print, and swaps the root logger's handlers
        # around each task; two tasks side by side (ParallelFor) can leave the swapped ones in place, which
        # would indent everything printed after the run and log into the closed kfp.log.
        original_print = builtins.print
        root_logger = logging.getLogger()
        original_handlers, original_level = root_logger.handlers[:], root_logger.level
        subprocess_task_handler.run_local_subprocess = self.run_task
        self.root.mkdir(parents=True, exist_ok=True)
        scope = contextlib.ExitStack()
        if not self.verbose:
            self._kfp_log = self.root / f".kfp-local-{os.getpid()}.log"
            sink = scope.enter_context(self._kfp_log.open("w", encoding="utf-8"))
            scope.enter_context(contextlib.redirect_stdout(sink))
            scope.enter_context(contextlib.redirect_stderr(sink))
        if self.live:
            self._live = Live(
                get_renderable=self._live_line,
                console=self.console,
                refresh_per_second=4,
                transient=True,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            scope.enter_context(self._live)
        try:
            with scope:
                yield self
        finally:
            self._live = None
            subprocess_task_handler.run_local_subprocess = original
            builtins.print = original_print
            root_logger.handlers[:] = original_handlers
            root_logger.setLevel(original_level)
            if self._kfp_log is not None and self._kfp_log.exists() and self.run_dir is not None:
                self._kfp_log = Path(shutil.move(self._kfp_log, self.run_dir / "logs" / "kfp.log"))

    @property
    def kfp_log(self) -> Path | None:
        """``kfp.local``'s own messages of a quiet run."""
        return self._kfp_log
