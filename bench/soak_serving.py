"""Soak: steady open-loop load on ``make serve`` while canary, rollback and promotion run every 30 s.

What it does (a benchmark, not a test: it takes ``--seconds``, 5 minutes by default):

1. In the local data dir (``ARREST_DATA_DIR``; it needs a champion, e.g. from ``make pipeline-run``), makes sure
   the registry's ``challenger`` alias names another version: when it does not, the champion's model is
   registered once more as a new version (same artifacts) and the alias set, as the pipeline's gate would.
2. Starts the server as ``make serve`` does (``python -m arrest_server --workers 0``: one HTTP worker process
   per CPU, the local serving state, watched).
3. Sends single-record V2 requests at ``--rate`` for ``--seconds`` (open loop, :mod:`bench.serving_load`) and,
   every 30 s, runs the next release operation through the CLI (``chicago-arrest serving ... --target local``,
   what ``make canary|promote|rollback`` run), in a cycle that ends where it starts::

       canary 10 → rollback (canary stopped) → canary 50 → promote → rollback (promotion undone)

   (after the last step the challenger alias is set again, registry only, for the next cycle).
4. Samples the resident memory of the server's process tree every second.

Pass: no errors, no dropped requests, memory at the end within 10 % of memory at the start (same served
state), every operation exit 0. Run from the repository root::

    ARREST_DATA_DIR=... .venv/bin/python -m bench.soak_serving --rate 150

Results: printed, and written to ``bench/results/serving_soak.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.bench_serving import MODEL, REPO, Running, child_env, free_port, loadavg, v2_body, wait_ready
from bench.bench_serving_capacity import records, tree_rss_mib
from bench.serving_load import build_request, open_loop

RESULTS = REPO / "bench" / "results" / "serving_soak.json"
CYCLE: list[list[str]] = [
    ["canary", "--percent", "10"],
    ["rollback"],
    ["canary", "--percent", "50"],
    ["promote"],
    ["rollback"],
]
MEMORY_GROWTH_LIMIT = 0.10


def ensure_challenger() -> tuple[str, str]:
    """Champion and challenger versions; registers a copy of the champion as the challenger when needed."""
    import mlflow

    from chicago_arrest.core.settings import Settings
    from chicago_arrest.registry.models import CHALLENGER, CHAMPION, MODEL_NAME

    uri = Settings().resolved_tracking_uri()
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    champion = client.get_model_version_by_alias(MODEL_NAME, CHAMPION)
    try:
        challenger = client.get_model_version_by_alias(MODEL_NAME, CHALLENGER)
    except mlflow.exceptions.MlflowException:
        challenger = None
    if challenger is None or challenger.version == champion.version:
        copy = client.create_model_version(
            MODEL_NAME,
            client.get_model_version_download_uri(MODEL_NAME, champion.version),
            run_id=champion.run_id,
            description=f"soak benchmark: copy of version {champion.version}",
        )
        client.set_registered_model_alias(MODEL_NAME, CHALLENGER, copy.version)
        challenger = copy
    return str(champion.version), str(challenger.version)


def set_challenger(version: str) -> None:
    """Point the ``challenger`` alias at ``version`` (registry only)."""
    import mlflow

    from chicago_arrest.core.settings import Settings
    from chicago_arrest.registry.models import CHALLENGER, MODEL_NAME

    uri = Settings().resolved_tracking_uri()
    mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri).set_registered_model_alias(
        MODEL_NAME, CHALLENGER, version
    )


def cli(args: Sequence[str]) -> dict[str, Any]:
    """One release operation through the CLI, as ``make`` runs it."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "chicago_arrest.cli", "serving", *args, "--target", "local"],
        cwd=REPO,
        env={**os.environ},
        capture_output=True,
        text=True,
    )
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    return {
        "op": " ".join(args),
        "rc": done.returncode,
        "seconds": round(time.perf_counter() - start, 2),
        "output": lines[:6],
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the soak."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, required=True, help="requests per second (half the capacity)")
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--every", type=float, default=30.0, help="seconds between release operations")
    parser.add_argument(
        "--workers", type=int, default=0, help="server --workers (0: one per CPU, make serve)"
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    from chicago_arrest.core.settings import Settings

    data_dir = Settings().data_dir.resolve()
    champion, challenger = ensure_challenger()
    subprocess.run(  # start from the served state "champion only"
        [sys.executable, "-m", "chicago_arrest.cli", "serving", "rollback", "--target", "local"],
        cwd=REPO,
        capture_output=True,
    )
    print(f"champion {champion}, challenger {challenger}, data dir {data_dir}", file=sys.stderr)
    port = free_port()
    log = data_dir / "bench" / "soak-server.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "arrest_server", "--workers", str(args.workers)),
                *("--http_port", str(port), "--grpc_port", str(free_port())),
            ],
            cwd=REPO,
            env=child_env(ARREST_DATA_DIR=str(data_dir)),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Running(f"arrest_server --workers {args.workers}", proc, f"http://127.0.0.1:{port}", log)
    ops: list[dict[str, Any]] = []
    memory: list[tuple[float, float]] = []
    stop = threading.Event()
    try:
        wait_ready(server)
        url = f"{server.url}/v2/models/{MODEL}/infer"
        raws = [build_request(url, v2_body([r], f"soak-{i}")) for i, r in enumerate(records(500))]
        open_loop(server.url, raws, args.rate, 5.0)  # warm-up: every worker answered
        time.sleep(2.0)

        def operations() -> None:
            t0 = time.monotonic()
            step = 0
            next_at = t0 + args.every / 2
            while next_at < t0 + args.seconds - 10:
                if stop.wait(max(0.0, next_at - time.monotonic())):
                    return
                result = {"at_s": round(time.monotonic() - t0, 1), **cli(CYCLE[step % len(CYCLE)])}
                if step % len(CYCLE) == len(CYCLE) - 1:
                    set_challenger(challenger)  # the promotion was undone: the challenger alias again
                ops.append(result)
                print(f"  {result['at_s']:6.1f}s {result['op']}: rc {result['rc']}", file=sys.stderr)
                step += 1
                next_at += args.every

        worker = threading.Thread(target=operations, daemon=True)
        worker.start()
        started = time.monotonic()
        outcome = open_loop(
            server.url,
            raws,
            args.rate,
            args.seconds,
            watch_header="x-model-version",
            tick=lambda t: memory.append((round(time.monotonic() - started, 1), tree_rss_mib(proc.pid))),
        )
        stop.set()
        worker.join(timeout=60)
    finally:
        stop.set()
        server.stop()
    summary = outcome.summary()
    first, last = memory[0][1], memory[-1][1]
    peak = max(m for _, m in memory)
    growth = (last - first) / first
    results = {
        "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "load_after": loadavg(),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "champion": champion,
        "challenger": challenger,
        "load": summary,
        "operations": ops,
        "memory_mib": {"start": first, "end": last, "peak": peak, "growth": round(growth, 4)},
        "memory_samples": memory,
        "passed": summary["errors"] == 0
        and summary["dropped"] == 0
        and all(op["rc"] == 0 for op in ops)
        and growth <= MEMORY_GROWTH_LIMIT,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(
        f"{summary['sent']} requests at {args.rate:g} rps for {args.seconds:g} s: {summary['errors']} errors, "
        f"{summary['dropped']} dropped, p50 {summary['p50_ms']} ms, p99 {summary['p99_ms']} ms, "
        f"max {summary['max_ms']} ms; versions answered {summary.get('model_versions')}; "
        f"{len(ops)} operations, {sum(op['rc'] != 0 for op in ops)} failed; memory {first} → {last} MiB "
        f"({growth:+.1%}, peak {peak}); passed: {results['passed']}"
    )
    return 0 if results["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
