"""CPU time of the code that reads raw values, this tree against a baseline, A/B interleaved in one run (issue 24).

Two measurements, each in alternating rounds of one fresh process per variant (``--baseline DIR`` holds the
baseline's ``src/``, ``serving/`` and ``bench/``, e.g. ``git archive <commit> src serving bench | tar -x -C DIR``):

* ``--ingest FILE``: a full file through ingest (read, month grouping, dedupe, order, the window; into a fresh
  local store) and the data contract (the exported window): CPU seconds of each, and peak RSS.
* ``--stages``: ``bench.serving_probe --stages`` of each tree (CPU per call of each stage of one single-record
  request in process: parse and validate, raw fields, raw features, classifier, model, the whole ``_score``) on
  the model folder ``--model-dir`` (default: the golden test model).

Run from the repository root, e.g.::

    .venv/bin/python -m bench.parse_ab --baseline /tmp/base --ingest ../shared/data/crimes_2017.csv.gz
    .venv/bin/python -m bench.parse_ab --baseline /tmp/base --stages --rounds 3

Results are printed (median of the rounds, and every round), not written. The machine may be shared: CPU time,
not wall time, and the variants alternate so that both see the same load.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GOLDEN_MODEL = ROOT / "tests" / "data" / "golden" / "model"


def ingest_child(source: Path) -> dict[str, float]:
    """One file through ingest and the contract in this process: CPU seconds of each, peak RSS (MiB)."""
    from chicago_arrest.core.store import LocalStore
    from chicago_arrest.data.ingest import ingest_file, load_undated, load_window
    from chicago_arrest.data.validate import validate_records

    with tempfile.TemporaryDirectory(prefix="parse-ab-") as tmp:
        store = LocalStore(Path(tmp) / "store")
        start = time.process_time()
        result = ingest_file(store, source, stations_path=source.parent / "police_stations.csv")
        ingest_s = time.process_time() - start
        import pandas as pd

        raw = pd.concat([load_window(store, result.window), load_undated(store)], ignore_index=True)
        start = time.process_time()
        checked = validate_records(raw)
        validate_s = time.process_time() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "ingest_cpu_s": ingest_s,
        "validate_cpu_s": validate_s,
        "both_cpu_s": ingest_s + validate_s,
        "peak_rss_mib": rss,
        "rows": float(len(raw)),
        "valid": float(checked.counts["valid"]),
    }


def _env(tree: Path | None) -> dict[str, str]:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1"}
    if tree is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(tree / "src"), str(tree / "serving"), str(tree)])
    return env


def _run(tree: Path | None, args: list[str]) -> str:
    cwd = tree if tree is not None else ROOT
    done = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=_env(tree), capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise RuntimeError(f"{args} in {cwd} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def ab(variants: dict[str, Path | None], args: list[str], rounds: int, parse: Any) -> None:
    """Alternate the variants ``rounds`` times; print each round and the medians."""
    results: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    for k in range(rounds):
        order = list(variants) if k % 2 == 0 else list(variants)[::-1]
        for name in order:
            figures = parse(_run(variants[name], args))
            results[name].append(figures)
            print(
                f"round {k + 1} {name}: " + ", ".join(f"{m} {v:.4g}" for m, v in figures.items()), flush=True
            )
    metrics = list(next(iter(results.values()))[0])
    print("\nmedian of", rounds, "rounds:")
    for metric in metrics:
        cells = {name: statistics.median(r[metric] for r in rounds_) for name, rounds_ in results.items()}
        print(f"  {metric:58s} " + "  ".join(f"{name} {v:.4g}" for name, v in cells.items()))


_STAGE = re.compile(r"^(.*): ([0-9.]+) ms CPU per call$")


def _stages(out: str) -> dict[str, float]:
    return {m.group(1): float(m.group(2)) for line in out.splitlines() if (m := _STAGE.match(line))}


def main(argv: list[str] | None = None) -> int:
    """Run the chosen A/B."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--baseline", type=Path, required=False, help="the baseline's src/, serving/ and bench/"
    )
    parser.add_argument("--ingest", type=Path, metavar="FILE")
    parser.add_argument("--stages", action="store_true")
    parser.add_argument("--model-dir", type=Path, default=GOLDEN_MODEL)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child-ingest", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_ingest:
        print(json.dumps(ingest_child(args.child_ingest)))
        return 0
    if not (args.ingest or args.stages) or args.baseline is None:
        parser.error("give --baseline DIR and --ingest FILE and/or --stages")
    variants: dict[str, Path | None] = {"baseline": args.baseline.resolve(), "this": None}
    if args.ingest:
        # This file runs as a script in both variants (the baseline has none); the library comes from the variant.
        child = [str(Path(__file__).resolve()), "--child-ingest", str(args.ingest.resolve())]
        ab(variants, child, args.rounds, lambda out: json.loads(out.strip().splitlines()[-1]))
    if args.stages:
        model = str(args.model_dir.resolve())
        ab(variants, ["-m", "bench.serving_probe", "--stages", "--model-dir", model], args.rounds, _stages)
    return 0


if __name__ == "__main__":
    sys.exit(main())
