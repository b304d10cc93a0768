"""``make bench``: every benchmark in sequence (run on an otherwise idle machine).

Results go to ``bench/results/*.json``; docs/benchmarks.md holds the tables, the machine and the commands.
The serving benchmark also compares with MLServer when ``bench/.mlserver-venv`` exists (bench/mlserver/README.md).
"""

from __future__ import annotations

import os
import subprocess
import sys

BENCHMARKS = (
    "bench.bench_enrich",
    "bench.bench_training",
    "bench.bench_pipeline",
    "bench.bench_serving",
    "bench.bench_explain",
    "bench.bench_batch_scoring",
    "bench.bench_monitoring",
    "bench.model_variants",
)
# Not here, because they need a champion in the local registry (make pipeline-run first) and minutes of a quiet
# machine each: bench.bench_serving_capacity (~5 min) and bench.soak_serving --rate <half the capacity> (5 min).


def main() -> int:
    """Run each benchmark module in its own process; stop at the first failure."""
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    for module in BENCHMARKS:
        print(f"== {module}", flush=True)
        code = subprocess.call([sys.executable, "-m", module], env=env)
        if code != 0:
            print(f"{module} failed with exit code {code}", file=sys.stderr)
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
