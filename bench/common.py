"""Helpers shared by the benchmarks: the machine, the data, timing, markdown tables."""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pandas as pd

from chicago_arrest.core.runtime import available_cpus

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = (
    "pandas",
    "numpy",
    "scipy",
    "scikit-learn",
    "imbalanced-learn",
    "xgboost-cpu",
    "pyproj",
    "mlflow",
    "kfp",
    "kserve",
)

#: The classifier defaults of issue 11's first round (before resampling went off and the forest was bounded),
#: for the benchmarks that compare against them.
RF_FIRST_ROUND = {"n_estimators": 150, "max_depth": 14, "min_samples_leaf": 3, "max_samples": 0.5}
XGB_FIRST_ROUND = {
    "n_estimators": 400,
    "max_depth": 6,
    "learning_rate": 0.05,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "min_child_weight": 2,
}


def median_ms(fn: Callable[[], Any], n: int) -> float:
    """Median wall time of ``fn`` over ``n`` calls (after one warm-up call), in milliseconds."""
    fn()
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1000, 3)


def shared_data_dir() -> Path:
    """The real data folder (``$ARREST_SHARED_DATA`` or ``../shared/data``)."""
    return Path(os.environ.get("ARREST_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def cpu_model() -> str:
    """The CPU model from /proc/cpuinfo."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine(packages: Sequence[str] = PACKAGES) -> dict[str, Any]:
    """What the numbers were measured on: CPU, cores, memory, load, Python and package versions."""
    mem_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    versions = {}
    for name in packages:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": available_cpus(),
        "memory_gib": mem_gib,
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "packages": versions,
    }


def load_sample() -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """The real 2017 sample and stations as text (or 50k generated records when they are absent)."""
    folder = shared_data_dir()
    crimes_path, stations_path = folder / "crimes_sample.csv", folder / "police_stations.csv"
    if crimes_path.is_file() and stations_path.is_file():
        read = {"dtype": str, "keep_default_na": False}
        return pd.read_csv(crimes_path, **read), pd.read_csv(stations_path, **read), str(crimes_path)
    from chicago_arrest.data.synthetic import generate_crimes, generate_stations

    stations = generate_stations()
    return generate_crimes(50_000, stations=stations), stations, "generated (chicago_arrest.data.synthetic)"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
