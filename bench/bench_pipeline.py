"""The full-year workload: ``make pipeline-run`` on a year of records, then batch scoring and monitoring a year.

Run: ``.venv/bin/python -m bench.bench_pipeline`` (``--runs N``, ``--source``, ``--score-source``, ``--months``,
``--no-loops``). Each run starts from an empty data directory (it lands, trains, registers and deploys from
scratch, like a first ``make pipeline-run``) and executes ``chicago-arrest pipeline run --source <year>`` as the
Makefile does; then, on the champion it deployed, ``pipeline batch-score`` and ``pipeline monitor --retrain
never`` on ``--score-source`` (default: the same year). Every local run writes each step's wall time, CPU time
(user + system of the step's process) and peak resident memory to ``<run>/logs/steps.json``
(:mod:`chicago_arrest.pipelines.progress`); this reads them, and the whole command's own wall time, CPU time and
largest process (``os.wait4``). Writes ``bench/results/pipeline_year.json`` and prints markdown tables: the
median of the runs and their spread (min-max) per step.

Budgets (issue 27): the training run in <= 90 s of wall time on 2 vCPUs, no process above 1 GB resident. Wall
times on a machine shared with other work are not the budget's: compare CPU time and memory then, and re-run
on a quiet machine for the wall times.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import REPO_ROOT, machine, markdown_table, shared_data_dir

DEFAULT_OUTPUT = REPO_ROOT / "bench" / "results" / "pipeline_year.json"
WALL_BUDGET_S = 90.0
MEMORY_BUDGET_MB = 1024.0


def run_command(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run one CLI command; its wall time, CPU time of it and its children, largest process, output."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "chicago_arrest.cli", *args],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{output[-4000:]}")
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "max_rss_mb": usage.ru_maxrss / 1024,
        "output": output,
    }


def steps_of(kfp_root: Path, pipeline: str) -> list[dict[str, Any]]:
    """The newest ``<pipeline>-*/logs/steps.json`` under ``kfp_root``."""
    runs = sorted(kfp_root.glob(f"{pipeline}-*/logs/steps.json"), key=lambda p: p.stat().st_mtime)
    if not runs:
        raise RuntimeError(f"no {pipeline} run with logs/steps.json under {kfp_root}")
    return list(json.loads(runs[-1].read_text(encoding="utf-8")))


def run_once(source: str, score_source: str, months: int | None, loops: bool) -> dict[str, Any]:
    """One cold training run in a fresh data directory, then batch scoring and monitoring on its champion."""
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ARREST_", "MLFLOW_", "KFP_"))}
        env["ARREST_DATA_DIR"] = str(Path(tmp) / "data")
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        kfp_root = Path(tmp) / "data" / "kfp"
        args = ["pipeline", "run", "--target", "local", "--source", source]
        if months:
            args += ["--months", str(months)]
        result: dict[str, Any] = {"training": run_command(args, env)}
        result["training"]["steps"] = steps_of(kfp_root, "chicago-arrest-training")
        if loops:
            result["batch_scoring"] = run_command(
                ["pipeline", "batch-score", "--target", "local", "--source", score_source], env
            )
            result["batch_scoring"]["steps"] = steps_of(kfp_root, "chicago-arrest-batch-scoring")
            result["monitoring"] = run_command(
                ["pipeline", "monitor", "--target", "local", "--source", score_source, "--retrain", "never"],
                env,
            )
            result["monitoring"]["steps"] = steps_of(kfp_root, "chicago-arrest-monitoring")
    # What the run selected and its test metrics, as the run printed them (the evaluate line and the table).
    result["training"]["selected"] = [
        line.strip()
        for line in result["training"]["output"].splitlines()
        if " selected " in line or line.startswith(("| roc_auc", "| pr_auc", "| ece"))
    ]
    for part in result.values():
        part.pop("output", None)
    return result


def summarise(runs: list[dict[str, Any]], part: str) -> dict[str, Any]:
    """Per step: median and range of wall, CPU and peak memory over the runs; the command's own figures."""
    steps: dict[str, dict[str, list[float]]] = {}
    for run in runs:
        for step in run[part]["steps"]:
            entry = steps.setdefault(step["step"], {"wall_s": [], "cpu_s": [], "peak_rss_mb": []})
            for key in entry:
                entry[key].append(float(step[key]))
    whole = {key: [float(run[part][key]) for run in runs] for key in ("wall_s", "cpu_s", "max_rss_mb")}
    return {
        "steps": {
            name: {
                key: {"median": statistics.median(v), "min": min(v), "max": max(v)}
                for key, v in values.items()
            }
            for name, values in steps.items()
        },
        "command": {
            key: {"median": statistics.median(v), "min": min(v), "max": max(v)} for key, v in whole.items()
        },
    }


def table(summary: dict[str, Any]) -> str:
    """Markdown: one row per step, then the whole command."""

    def cell(stat: dict[str, float], digits: int = 1) -> str:
        text = f"{stat['median']:.{digits}f}"
        if stat["max"] - stat["min"] >= 10 ** (-digits):
            text += f" ({stat['min']:.{digits}f}-{stat['max']:.{digits}f})"
        return text

    rows = [
        [name, cell(s["wall_s"]), cell(s["cpu_s"]), cell(s["peak_rss_mb"], 0)]
        for name, s in summary["steps"].items()
    ]
    c = summary["command"]
    rows.append(["**whole command**", cell(c["wall_s"]), cell(c["cpu_s"]), cell(c["max_rss_mb"], 0)])
    return markdown_table(["step", "wall s", "CPU s", "peak RSS MB"], rows)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and print the tables."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--source", default=str(shared_data_dir() / "crimes_2017.csv.gz"))
    parser.add_argument("--score-source", default="", help="batch-scored and monitored (default: --source)")
    parser.add_argument("--months", type=int, default=None, help="MONTHS of the training run (default: 12)")
    parser.add_argument("--no-loops", action="store_true", help="only the training run")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    runs = []
    for i in range(args.runs):
        runs.append(run_once(args.source, args.score_source or args.source, args.months, not args.no_loops))
        t = runs[-1]["training"]
        print(f"run {i + 1}: training {t['wall_s']:.1f} s wall, {t['cpu_s']:.1f} s CPU", flush=True)
        for line in t["selected"]:
            print(f"  {line}", flush=True)
    parts = ["training"] + ([] if args.no_loops else ["batch_scoring", "monitoring"])
    summary = {part: summarise(runs, part) for part in parts}
    training = summary["training"]
    biggest = max(s["peak_rss_mb"]["max"] for s in training["steps"].values())
    budgets = {
        "wall_s_median": training["command"]["wall_s"]["median"],
        "wall_budget_s": WALL_BUDGET_S,
        "largest_step_process_mb": biggest,
        "memory_budget_mb": MEMORY_BUDGET_MB,
        "wall_met": training["command"]["wall_s"]["max"] <= WALL_BUDGET_S,
        "memory_met": training["command"]["max_rss_mb"]["max"] <= MEMORY_BUDGET_MB,
    }
    result = {
        "machine": machine(),
        "source": args.source,
        "score_source": args.score_source or args.source,
        "months": args.months,
        "summary": summary,
        "budgets": budgets,
        "runs": runs,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1), encoding="utf-8")
    for part in parts:
        print(f"\n{part} ({len(runs)} run(s); median, range in brackets)\n")
        print(table(summary[part]))
    print(
        f"\nbudgets: wall {budgets['wall_s_median']:.1f} s (max of the runs "
        f"{training['command']['wall_s']['max']:.1f}) vs {WALL_BUDGET_S:.0f} s: "
        f"{'met' if budgets['wall_met'] else 'NOT met'}; largest process "
        f"{training['command']['max_rss_mb']['max']:.0f} MB vs {MEMORY_BUDGET_MB:.0f}: "
        f"{'met' if budgets['memory_met'] else 'NOT met'}"
    )
    return result


if __name__ == "__main__":
    main()
