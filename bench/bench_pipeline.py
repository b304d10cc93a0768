"""Wall time of ``make pipeline-run SOURCE=../shared/data/crimes_sample.csv`` with a per-step table.

Run: ``.venv/bin/python -m bench.bench_pipeline`` (``--runs N``). Each run starts from an empty data directory
(so it lands, trains, registers and deploys from scratch, like a first ``make pipeline-run``), executes
``chicago-arrest pipeline run --source <sample>`` exactly as the Makefile does, and reads each task's start and end
from kfp.local's log. Writes ``bench/results/pipeline.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.common import REPO_ROOT, machine, markdown_table, shared_data_dir

DEFAULT_OUTPUT = REPO_ROOT / "bench" / "results" / "pipeline.json"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_EVENT = re.compile(
    r"^(\d\d:\d\d:\d\d\.\d+) - INFO - (Executing task|Task) '(\w+)'(?: finished with status (\w+))?"
)


#: A step's line in the run's quiet output (issue 16): ``  train xgboost            13.0 s  calibration ...``.
_STEP_LINE = re.compile(r"^  ([a-z][\w-]*(?: [\w-]+)?)\s+(\d+(?:\.\d+)?) s  ")


def task_times(log: str) -> list[dict[str, Any]]:
    """(task, seconds) from the run's output.

    The step lines of the quiet output when there are any; else kfp.local's own log (``VERBOSE=1``), where
    parallel iterations of the same task are matched in order.
    """
    quiet = [_STEP_LINE.match(line) for line in _ANSI.sub("", log).splitlines()]
    steps = [{"task": m.group(1), "seconds": float(m.group(2)), "status": "SUCCESS"} for m in quiet if m]
    if steps:
        return steps
    starts: dict[str, list[datetime]] = {}
    done: list[dict[str, Any]] = []
    for line in _ANSI.sub("", log).splitlines():
        match = _EVENT.match(line.strip())
        if not match:
            continue
        stamp = datetime.strptime(match.group(1), "%H:%M:%S.%f")
        task = match.group(3)
        if match.group(2) == "Executing task":
            starts.setdefault(task, []).append(stamp)
        elif starts.get(task):
            begin = starts[task].pop(0)
            done.append({"task": task, "seconds": (stamp - begin).total_seconds(), "status": match.group(4)})
    return done


def run_once(source: Path) -> dict[str, Any]:
    """One cold run in a fresh data directory."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ARREST_", "MLFLOW_", "KFP_"))}
        env["ARREST_DATA_DIR"] = str(Path(tmp) / "data")
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "chicago_arrest.cli", "pipeline", "run", "--source", str(source)],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"pipeline failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return {"wall_s": wall, "tasks": task_times(proc.stdout + proc.stderr)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--source", type=Path, default=shared_data_dir() / "crimes_sample.csv")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    if not args.source.is_file():
        raise SystemExit(f"{args.source} not found (the real sample); pass --source")
    runs = []
    for i in range(args.runs):
        runs.append(run_once(args.source))
        print(f"run {i + 1}: {runs[-1]['wall_s']:.1f} s", flush=True)
    steps: dict[str, list[float]] = {}
    for run in runs:
        per_task: dict[str, float] = {}
        for t in run["tasks"]:
            per_task[t["task"]] = per_task.get(t["task"], 0.0) + t["seconds"]
        for task, seconds in per_task.items():
            steps.setdefault(task, []).append(seconds)
    result = {
        "machine": machine(),
        "source": str(args.source),
        "wall_s": [r["wall_s"] for r in runs],
        "wall_s_median": statistics.median(r["wall_s"] for r in runs),
        "steps_s_median": {k: statistics.median(v) for k, v in steps.items()},
        "runs": runs,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2), encoding="utf-8")
    rows = [[task, f"{seconds:.1f}"] for task, seconds in result["steps_s_median"].items()]
    if not rows:
        print("(no per-step lines found in the output)", file=sys.stderr)
    rows.append(["**whole run (wall, incl. start-up and summary)**", f"**{result['wall_s_median']:.1f}**"])
    print(
        markdown_table(["step", "median seconds (train: sum of the 3 model tasks, 2 run in parallel)"], rows)
    )
    return result


if __name__ == "__main__":
    main()
