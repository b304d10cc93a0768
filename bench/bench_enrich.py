"""Benchmark of the enrichment on 1M records: nearest-station distance + temporal features.

Run: ``.venv/bin/python -m bench.bench_enrich`` (``--help`` for options). Writes ``bench/results/enrich.json``
and prints a markdown table for docs/benchmarks.md.

The records are the real 2017 sample (``../shared/data/crimes_sample.csv``, or ``$ARREST_SHARED_DATA``)
replicated to ``--rows`` with fresh ids, or generated records when the real sample is absent. Timed, each
``--repeats`` times after one untimed warm-up:

a. ``enrich_features`` from raw text columns (what the training pipeline and the server do);
b. ``enrich_features`` from typed columns (the ``valid`` frame of ``validate_records``);
c. ``station_distance_geopandas`` (geopandas ``sjoin_nearest``), for comparison with
c'. ``station_distance`` (KD-tree) alone, same input;
d. ``validate_records`` itself on the same text records (context for b).

Every library is pinned to one thread (OMP/MKL/OpenBLAS env vars before numpy is imported, and
threadpoolctl), so numbers are per core; the target is ≤ 2 s for (a) on the reference machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")
REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPO_ROOT / "bench" / "results" / "enrich.json"
TARGET_S = 2.0


def pin_threads() -> None:
    """Pin BLAS/OpenMP pools to one thread (env vars take effect only if numpy is not imported yet)."""
    for var in THREAD_VARS:
        os.environ[var] = "1"
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def machine() -> dict[str, Any]:
    """The shared machine description plus the libraries and thread settings this benchmark depends on."""
    from bench.common import machine as common_machine

    info = common_machine(("pandas", "numpy", "scipy", "pyproj", "pyarrow", "geopandas", "shapely"))
    info["threads"] = {var: os.environ.get(var) for var in THREAD_VARS}
    return info


def load_records(rows: int) -> tuple[Any, Any, str]:
    """``(records, stations, source)``: the real sample (or generated records) replicated to ``rows``."""
    import numpy as np
    import pandas as pd

    from bench.common import shared_data_dir
    from chicago_arrest.data.synthetic import generate_crimes, generate_stations

    data = shared_data_dir()
    if (data / "crimes_sample.csv").is_file() and (data / "police_stations.csv").is_file():
        base = pd.read_csv(data / "crimes_sample.csv", dtype=str, keep_default_na=False)
        stations = pd.read_csv(data / "police_stations.csv", dtype=str, keep_default_na=False)
        source = f"real 2017 sample ({len(base):,} records) replicated"
    else:
        stations = generate_stations()
        base = generate_crimes(min(rows, 50_000), stations=stations)
        source = f"generated records ({len(base):,}) replicated"
    copies = -(-rows // len(base))
    frame = pd.concat([base] * copies, ignore_index=True).iloc[:rows].copy()
    frame["id"] = (np.arange(rows, dtype=np.int64) + 100_000_000).astype(str)  # unique, as in the portal
    return frame, stations, source


def timed(fn: Callable[[], object], repeats: int) -> dict[str, Any]:
    fn()  # warm-up: caches (pyproj transformer), allocator, lazy imports
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return {
        "median_s": statistics.median(runs),
        "min_s": min(runs),
        "max_s": max(runs),
        "runs_s": runs,
    }


def profile(fn: Callable[[], object], top: int = 25) -> str:
    import cProfile
    import io
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    fn()
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"{results['rows']:,} records ({results['source']}), {results['repeats']} runs each, one thread.",
        "",
        "| case | median (s) | min (s) | max (s) | rows/s (median) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for case in results["cases"]:
        rate = results["rows"] / case["median_s"]
        lines.append(
            f"| {case['name']} | {case['median_s']:.2f} | {case['min_s']:.2f} | {case['max_s']:.2f} | {rate:,.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--no-geopandas", action="store_true", help="skip the geopandas reference (slow)")
    parser.add_argument("--profile", action="store_true", help="cProfile one run of (a) and print the top")
    args = parser.parse_args(argv)

    pin_threads()
    import pandas as pd

    from chicago_arrest.data.enrich import (
        StationIndex,
        enrich_features,
        station_distance,
    )
    from chicago_arrest.data.validate import validate_records
    from tests.geo_reference import station_distance_geopandas

    info = machine()
    raw, stations, source = load_records(args.rows)
    index = StationIndex.from_frame(stations)
    now = pd.Timestamp("2030-01-01")
    typed = validate_records(raw, now=now).valid
    if len(typed) != len(raw):
        raise SystemExit(f"the contract quarantined {len(raw) - len(typed)} benchmark records")

    cases: list[tuple[str, str, Callable[[], object]]] = [
        ("a", "(a) enrich_features, raw text columns", lambda: enrich_features(raw, index)),
        (
            "b",
            "(b) enrich_features, typed columns (after validate_records)",
            lambda: enrich_features(typed, index),
        ),
        ("c_kdtree", "(c') station_distance only, KD-tree, raw text", lambda: station_distance(raw, index)),
    ]
    if not args.no_geopandas:
        cases.append(
            (
                "c_geopandas",
                "(c) station_distance_geopandas (sjoin_nearest), raw text",
                lambda: station_distance_geopandas(raw, stations),
            )
        )
    cases.append(("d", "(d) validate_records, raw text (context)", lambda: validate_records(raw, now=now)))

    results: dict[str, Any] = {
        "benchmark": "enrich",
        "command": ".venv/bin/python -m bench.bench_enrich "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "rows": args.rows,
        "repeats": args.repeats,
        "source": source,
        "stations": len(index.names),
        "target_s": TARGET_S,
        "machine": info,
        "cases": [],
    }
    for key, name, fn in cases:
        print(f"timing {name} ...", file=sys.stderr, flush=True)
        results["cases"].append({"key": key, "name": name, **timed(fn, args.repeats)})
    results["machine"]["load_average_at_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    a = results["cases"][0]["median_s"]
    results["target_met"] = a <= TARGET_S
    if args.profile:
        results["profile_a"] = profile(cases[0][2])

    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(markdown(results))
    print(
        f"\n(a) median {a:.2f} s vs target {TARGET_S:.1f} s: {'met' if results['target_met'] else 'NOT met'}"
    )
    if args.profile:
        print("\ncProfile of one run of (a), by cumulative time:\n")
        print(results["profile_a"])
    print(f"wrote {args.output}", file=sys.stderr)
    return results


if __name__ == "__main__":
    main()
