"""How a local pipeline run (``kfp.local``) looks to a person: one line per step, each step's log in a file.

``kfp.local``'s ``SubprocessRunner`` runs every task as a child process, reads its output line by line and
prints it (indented), then logs the task's inputs and outputs: ~1,600 lines for one training run. Inside
:class:`LocalRun` every task's output goes to ``<run folder>/logs/<step>.log`` instead, and the console gets:

- one line per step as it finishes: name, seconds, its key figures (from the task's own
  ``executor_output.json``, so nothing extra is printed by the steps);
- while a step runs, a live line (running steps, seconds, the last line of their log) when the output is a
  terminal, and nothing else;
- on a failure, which step failed, its error line and its log file.

``verbose=True`` streams everything as ``kfp.local`` does and still writes the log files. The mechanism is the
one function ``kfp.local`` runs a task process with (``subprocess_task_handler.run_local_subprocess``), so it
serves every pipeline run locally; the key figures of a step come from :data:`FIGURES` (by component name), or
its scalar outputs when it has no entry there. ``kfp.local``'s own messages go to ``logs/kfp.log``.

HTML artifacts (``system.HTML``) get a ``<file>.html`` copy next to them, which a browser opens as a page;
:func:`latest_reports` finds them for ``make report``.
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from chicago_arrest.reports.format import count, metric, number

#: Key figures of a step: ``(input parameters, outputs)`` → one short phrase. ``outputs`` holds the
#: step's return value under ``Output`` and each output artifact's metadata under the artifact's name.
Figures = Callable[[dict[str, Any], dict[str, Any]], str]


def _ingest(_: dict[str, Any], out: dict[str, Any]) -> str:
    o = out.get("Output") or {}
    window = o.get("window") or []
    text = f"{count(o.get('rows'))} rows in the window"
    if window:
        text += f" {window[0]}..{window[-1]}"
    text += f", {len(o.get('landed') or [])} month(s) landed, {count(o.get('stations'))} police stations"
    extras = [
        f"{k.replace('_', ' ')} {count(o[k])}"
        for k in ("duplicates_replaced", "undated", "future_dated")
        if o.get(k)
    ]
    return text + (f" ({', '.join(extras)})" if extras else "")


def _validate(_: dict[str, Any], out: dict[str, Any]) -> str:
    o = out.get("Output") or {}
    return f"{count(o.get('valid'))} valid, {count(o.get('quarantined'))} quarantined (of {count(o.get('rows_in'))})"


def _split(_: dict[str, Any], out: dict[str, Any]) -> str:
    o = out.get("Output") or {}
    return (
        f"{o.get('kind', '?')} split: train {count(o.get('train_rows'))} rows "
        f"({o.get('train_start')}..{o.get('train_end')}), test {count(o.get('test_rows'))} "
        f"({o.get('test_start')}..{o.get('test_end')})"
    )


def _enrich(_: dict[str, Any], out: dict[str, Any]) -> str:
    o = out.get("Output") or {}
    return (
        f"{count(o.get('rows'))} rows, median distance to a police station {count(o.get('distance_m_p50'))} m"
    )


def _train(_: dict[str, Any], out: dict[str, Any]) -> str:
    m = out.get("metrics") or {}
    return (
        f"calibration ROC-AUC {metric(m.get('calibration_auc'))}, fit {number(m.get('fit_seconds'))} s, "
        f"{count(m.get('selected_features'))} features"
    )


def _evaluate(_: dict[str, Any], out: dict[str, Any]) -> str:
    o = out.get("Output") or {}
    candidates = o.get("candidates") or {}
    by_auc = ", ".join(f"{k} {metric(v.get('calibration_auc'))}" for k, v in candidates.items())
    metrics = o.get("metrics") or {}
    # The selection's first reason (the chosen model's); the others are in the report.
    why = str(o.get("selection") or "").split("; ")[0] or f"calibration ROC-AUC {by_auc}"
    return (
        f"selected {o.get('selected', '?')}: {why}; its test ROC-AUC {metric(metrics.get('test_roc_auc'))}, "
        f"ECE {metric(metrics.get('test_ece'))}"
    )


def _register(_: dict[str, Any], out: dict[str, Any]) -> str:
    o = out.get("Output") or {}
    return f"registered {o.get('model_uri') or 'version ' + str(o.get('version'))}"


def _gate(_: dict[str, Any], out: dict[str, Any]) -> str:
    o = out.get("Output") or {}
    verdict = "promote" if o.get("promoted") else "canary" if o.get("passed") else "reject"
    return f"{verdict} v{o.get('challenger_version')}: {o.get('reason', '')}"


def _deploy(_: dict[str, Any], out: dict[str, Any]) -> str:
    o = out.get("Output") or {}
    return f"{o.get('action', '?')}: {o.get('message', '')}"


def _batch_score(_: dict[str, Any], out: dict[str, Any]) -> str:
    o = out.get("Output") or {}
    return (
        f"{count(o.get('scored'))} scored with v{o.get('model_version')}, {count(o.get('quarantined'))} quarantined "
        f"-> {o.get('predictions')}"
    )


def _monitor(_: dict[str, Any], out: dict[str, Any]) -> str:
    o = out.get("Output") or {}
    reasons = o.get("reasons") or []
    return (
        f"{str(o.get('decision', '?')).upper()} v{o.get('model_version')} on {count(o.get('rows'))} records: "
        f"{reasons[0] if reasons else ''}; retrain {o.get('retrain')}"
    )


#: Key figures by component name (the training pipeline's; other pipelines add theirs).
FIGURES: dict[str, Figures] = {
    "batch-score": _batch_score,
    "monitor": _monitor,
    "ingest": _ingest,
    "validate": _validate,
    "split": _split,
    "enrich": _enrich,
    "train": _train,
    "evaluate": _evaluate,
    "register": _register,
    "gate": _gate,
    "deploy": _deploy,
}
#: The input parameter that names an iteration of a step in a loop (``train logreg``), by component name.
LABEL_PARAMETER: dict[str, str] = {"train": "model_type"}


def generic_figures(_: dict[str, Any], out: dict[str, Any]) -> str:
    """The scalar outputs of a step with no :data:`FIGURES` entry (at most six)."""
    values: dict[str, Any] = {}
    for name, value in out.items():
        source = value if isinstance(value, dict) else {name: value}
        values.update({k: v for k, v in source.items() if isinstance(v, str | int | float | bool)})
    shown = [f"{k}={number(v, 4) if isinstance(v, float) else v}" for k, v in list(values.items())[:6]]
    return ", ".join(shown)


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
        figures: Its key figures (success).
        error: Its error line (failure).
        last_line: The newest line of its log (for the live line).
    """

    task: str
    label: str
    log: Path
    started: float
    seconds: float | None = None
    ok: bool | None = None
    figures: str = ""
    error: str = ""
    last_line: str = ""


def _executor_input(full_command: list[str]) -> dict[str, Any]:
    """The executor input JSON a KFP lightweight component is started with."""
    index = full_command.index("--executor_input")
    return dict(json.loads(full_command[index + 1]))


def _task_outputs(output_file: Path) -> dict[str, Any]:
    """A finished task's outputs: parameters by name, and each artifact's metadata by artifact name."""
    try:
        data = json.loads(output_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    outputs: dict[str, Any] = dict(data.get("parameterValues") or {})
    for name, value in (data.get("artifacts") or {}).items():
        artifacts = value.get("artifacts") or [{}]
        outputs[name] = artifacts[0].get("metadata") or {}
    return outputs


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


def _error_line(log: Path) -> str:
    """The step's own one-line error (``error: ...`` from ``run_step``), else its last line."""
    lines = [
        ln.strip() for ln in log.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()
    ]
    errors = [ln for ln in lines if ln.startswith("error: ")]
    if errors:
        return errors[-1].removeprefix("error: ")
    return lines[-1] if lines else "no output"


_LOG_LINE = re.compile(r"^(?:\[KFP Executor [^\]]*\]|\d\d:\d\d:\d\d \w+ [\w.]+):\s+(.+)$")
_EXECUTOR_CHATTER = (
    "Looking for component",
    "Loading KFP component",
    "Got executor_input",
    "Wrote executor output",
)


def progress_message(line: str) -> str | None:
    """The message of a step's log line for the live line; ``None`` for KFP's own chatter and JSON dumps."""
    match = _LOG_LINE.match(line.strip())
    if match is None or match[1].startswith(_EXECUTOR_CHATTER):
        return None
    return match[1]


def _terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and os.environ.get("TERM") != "dumb"


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
        self.stream = stream or sys.stdout
        self.live = (not verbose and _terminal(self.stream)) if live is None else live
        self.steps: list[Step] = []
        self.run_dir: Path | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._kfp_log: Path | None = None
        self._live_shown = False

    # -------------------------------------------------------------------------------------------- console

    def say(self, text: str) -> None:
        """Print a line to the console (above the live line)."""
        with self._lock:
            self._clear_live()
            self.stream.write(text + "\n")
            self.stream.flush()

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

    def _clear_live(self) -> None:
        if self._live_shown:
            self.stream.write("\r\x1b[K")
            self._live_shown = False

    def _render_live(self) -> None:
        with self._lock:
            running = [s for s in self.steps if s.ok is None]
            if not running:
                self._clear_live()
                self.stream.flush()
                return
            now = time.monotonic()
            names = " · ".join(f"{s.label} {now - s.started:.0f} s" for s in running)
            last = next((s.last_line for s in reversed(running) if s.last_line), "")
            width = shutil.get_terminal_size((100, 24)).columns - 1
            text = f"  … {names}" + (f"  | {last}" if last else "")
            self.stream.write("\r\x1b[K" + text[:width])
            self.stream.flush()
            self._live_shown = True

    def _tick(self) -> None:
        while not self._stop.wait(0.25):
            self._render_live()

    def _finished(self, step: Step) -> None:
        mark = f"{step.seconds:6.1f} s" if step.seconds is not None else ""
        if not self.verbose:
            self.say(f"  {step.label:<22} {mark}  {step.figures if step.ok else 'FAILED'}")

    # ---------------------------------------------------------------------------------------------- tasks

    def _start(self, executor_input: dict[str, Any]) -> tuple[Step, Path]:
        output_file = Path(executor_input["outputs"]["outputFile"]).resolve()
        task_dir = output_file.parent
        relative = task_dir.relative_to(self.root).parts
        task = task_dir.name
        params = (executor_input.get("inputs") or {}).get("parameterValues") or {}
        label = task
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
        return step, output_file

    def run_task(self, full_command: list[str], env_vars: dict[str, str] | None = None) -> int:
        """Run one task process (in place of ``kfp.local``'s): its output to its log file; its line when done."""
        executor_input = _executor_input(full_command)
        step, output_file = self._start(executor_input)
        env = {**os.environ, **env_vars} if env_vars else None
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
                message = progress_message(line)
                if message:
                    step.last_line = message
                if self.verbose:
                    print(line, end="")  # kfp.local indents this print
            code = process.wait()
        step.seconds = time.monotonic() - step.started
        if code == 0:
            copy_html_artifacts(executor_input)
            outputs = _task_outputs(output_file)
            try:
                step.figures = FIGURES.get(step.task, generic_figures)(
                    executor_input.get("inputs", {}).get("parameterValues") or {}, outputs
                )
            except Exception as exc:  # a summary line must never fail a run
                step.figures = f"(no summary: {type(exc).__name__}: {exc})"
        else:
            step.error = _error_line(step.log)
        step.ok = code == 0
        self._finished(step)
        return code

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
        redirect = contextlib.ExitStack()
        if not self.verbose:
            self._kfp_log = self.root / f".kfp-local-{os.getpid()}.log"
            sink = redirect.enter_context(self._kfp_log.open("w", encoding="utf-8"))
            redirect.enter_context(contextlib.redirect_stdout(sink))
            redirect.enter_context(contextlib.redirect_stderr(sink))
        if self.live:
            self._ticker = threading.Thread(target=self._tick, name="progress", daemon=True)
            self._ticker.start()
        try:
            with redirect:
                yield self
        finally:
            subprocess_task_handler.run_local_subprocess = original
            builtins.print = original_print
            root_logger.handlers[:] = original_handlers
            root_logger.setLevel(original_level)
            self._stop.set()
            if self._ticker is not None:
                self._ticker.join()
            with self._lock:
                self._clear_live()
            if self._kfp_log is not None and self._kfp_log.exists():
                if self.run_dir is not None:
                    self._kfp_log = Path(shutil.move(self._kfp_log, self.run_dir / "logs" / "kfp.log"))
                sys.stdout.flush()

    @property
    def kfp_log(self) -> Path | None:
        """``kfp.local``'s own messages of a quiet run."""
        return self._kfp_log


# -------------------------------------------------------------------------------------------------- reports


@dataclass
class Reports:
    """The HTML reports of the newest local run: ``name`` → path (``validate``, ``evaluate``, ``gate``...)."""

    run_dir: Path
    pages: dict[str, Path] = field(default_factory=dict)

    @property
    def main(self) -> Path:
        """The training report when there is one, else the last report of the run."""
        return self.pages.get("evaluate") or list(self.pages.values())[-1]


def latest_reports(root: Path) -> Reports | None:
    """The reports (``*.html`` copies) of the newest run folder under ``root`` that has any."""
    runs = sorted((p for p in root.glob("*-*") if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True)
    for run in runs:
        pages = sorted(run.rglob("*.html"), key=lambda p: p.stat().st_mtime)
        if pages:
            return Reports(run, {str(p.parent.relative_to(run)): p for p in pages})
    return None


def browser_command() -> list[str] | None:
    """The command that opens a file in the desktop's browser, if there is one.

    ``open`` on macOS, ``xdg-open`` in a Linux desktop session (``DISPLAY`` or ``WAYLAND_DISPLAY`` set);
    ``None`` elsewhere (ssh, containers, CI), where only the path is printed.
    """
    if sys.platform == "darwin" and shutil.which("open"):
        return ["open"]
    desktop = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    if sys.platform.startswith("linux") and desktop and shutil.which("xdg-open"):
        return ["xdg-open"]
    return None


def open_in_browser(path: Path) -> bool:
    """Open ``path`` in the desktop's browser without waiting for it; ``False`` when no browser can be opened."""
    command = browser_command()
    if command is None:
        return False
    subprocess.Popen(
        [*command, str(path.resolve())],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    return True
