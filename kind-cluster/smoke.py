"""The Python half of ``kind-cluster/smoke.sh`` (``make kind-smoke``): land data, run the pipeline, sample traffic.

Run with the project's interpreter from the repository root (smoke.sh does), after ``make kind-up`` recorded the
cluster (``.data/cluster.json``, :mod:`chicago_arrest.core.targets`)::

    python kind-cluster/smoke.py quiet                # no KFP run active (waits for them, names them)
    python kind-cluster/smoke.py land --seed 1        # generated records -> the data bucket (host port of MinIO)
    python kind-cluster/smoke.py run --seed 1         # a KFP run on the cluster, waited for
    python kind-cluster/smoke.py settle               # the newest predictor revision runs the spec and is ready
    python kind-cluster/smoke.py traffic --expect 10  # V2 requests through Kourier, split vs the stated one

``land`` needs the pipeline steps' MinIO keys in ``ARREST_S3_ACCESS_KEY`` / ``ARREST_S3_SECRET_KEY`` (smoke.sh
reads them from Secret kubeflow/chicago-arrest-s3, never from a command line). Each command prints one summary
line and exits 0 on success, 1 otherwise.

Why land first: a step's ``source`` must be a file inside the step's pod, which a generated file on the host is
not. The generated months and their police stations are landed into the data bucket, exactly where the ingest
step keeps them, and the run uses ``refresh_months=0``: with nothing to land and the stations in the store the
ingest step makes no Socrata call (:func:`chicago_arrest.data.ingest.ingest_socrata`), so the smoke test depends
on nothing outside the cluster.

Why ``quiet`` first: a run that ``make pipeline-run`` started shares the registry, the InferenceService and the
months with the smoke test; its canary would land in the middle of the split checks. Why ``settle`` after each
serving change: KServe moves traffic to a new revision only once it is ready, and the status names the split
meant, not the one served (:mod:`chicago_arrest.release.rollout`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import inspect
import json
import math
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

REPO_ROOT = Path(__file__).resolve().parents[1]

from chicago_arrest.core import names  # noqa: E402
from chicago_arrest.core.targets import ClusterRecord, read_record, record_path  # noqa: E402

#: Months of generated data, and the pipeline's window over them (the last is the test month).
MONTHS = 3
GOLDEN = REPO_ROOT / "tests" / "data" / "golden" / "v2_request.json"


def _record() -> ClusterRecord:
    record = read_record(record_path())
    if record is None:
        raise SystemExit(f"FAIL: no cluster recorded in {record_path()}: run make kind-up first")
    return record


def window_start(today: dt.date) -> dt.date:
    """First day of the window: ``MONTHS`` full months before ``today``'s month (the ingest step's window)."""
    year, month = today.year, today.month - MONTHS
    while month < 1:
        year, month = year - 1, month + 12
    return dt.date(year, month, 1)


def land(seed: int, rows: int, endpoint: str | None) -> int:
    """Generate ``rows`` records over the last ``MONTHS`` full months and land them in the data bucket."""
    from chicago_arrest.core.settings import Settings
    from chicago_arrest.core.store import make_store
    from chicago_arrest.data.ingest import ingest_file
    from chicago_arrest.data.synthetic import generate_crimes, generate_stations

    today = dt.datetime.now(ZoneInfo(names.CHICAGO_TZ)).date()
    stations = generate_stations()
    crimes = generate_crimes(
        rows, start=window_start(today).isoformat(), months=MONTHS, seed=seed, stations=stations
    )
    endpoint = endpoint or _record().s3_endpoint or "localhost:9000"
    settings = Settings(store_backend="s3", s3_endpoint=endpoint, s3_secure=False)  # keys: ARREST_S3_* env
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "crimes.csv"
        crimes.to_csv(path, index=False)
        stations.to_csv(Path(tmp) / "police_stations.csv", index=False)
        result = ingest_file(make_store(settings), path, months=MONTHS)
    print(
        f"landed {sum(result.rows.values())} generated records (seed {seed}) for {', '.join(result.landed)}"
    )
    return 0


def run(seed: int, canary_percent: int, timeout_s: int) -> int:
    """Start the training pipeline on the recorded cluster's KFP and wait for it; 0 if it succeeded."""
    from chicago_arrest.core import kfp_api
    from chicago_arrest.pipelines.run import run_cluster
    from chicago_arrest.pipelines.training import training_pipeline

    record = _record()
    defaults = {
        k: p.default for k, p in inspect.signature(training_pipeline.pipeline_func).parameters.items()
    }
    arguments = {
        **defaults,
        "months": MONTHS,
        "refresh_months": 0,  # the months landed by `land` are all there: nothing to fetch
        "test_months": 1,
        "models": ["logreg"],  # the fastest model: this checks the wiring, not the model
        "promotion_margin": -1.0,  # a second run on other data always becomes the challenger
        "max_ece": 1.0,  # a few thousand generated rows: calibration is not what this checks
        "canary_percent": canary_percent,
    }
    url = run_cluster(arguments, record.kfp_host, image=record.image, profile=record.cluster_profile)
    run_id = url.rstrip("/").rsplit("/", 1)[-1]
    result = kfp_api.client(record.kfp_host).wait_for_run_completion(run_id, timeout=timeout_s)
    state = str(getattr(result, "state", "UNKNOWN"))
    print(f"run {run_id} (seed {seed}): {state}")
    return 0 if state.endswith("SUCCEEDED") else 1


def _run_line(run: Any) -> str:
    return (
        f"{getattr(run, 'display_name', '?')} ({getattr(run, 'run_id', '?')}, {getattr(run, 'state', '?')})"
    )


def quiet(timeout_s: float, poll_s: float = 30.0, client: Any = None) -> int:
    """Wait until no KFP run is active (at most ``timeout_s``); 0 when none is, 1 naming those still active."""
    from chicago_arrest.core import kfp_api

    client = client or kfp_api.client(_record().kfp_host)
    deadline = time.monotonic() + timeout_s
    waited: dict[str, str] = {}
    while True:
        runs = kfp_api.active_runs(client)
        if not runs:
            after = f" after waiting for {', '.join(waited.values())}" if waited else ""
            print(f"no KFP run active{after}")
            return 0
        waited.update({str(getattr(r, "run_id", "?")): _run_line(r) for r in runs})
        if time.monotonic() >= deadline:
            print(
                f"{len(runs)} KFP run(s) still active after {timeout_s:.0f} s: "
                f"{'; '.join(_run_line(r) for r in runs)}: they change the registry and the InferenceService the "
                "smoke test checks; wait for them or terminate them in the KFP UI"
            )
            return 1
        sleep = min(poll_s, max(deadline - time.monotonic(), 0.0))
        print(
            f"waiting for {len(runs)} active KFP run(s): {'; '.join(_run_line(r) for r in runs)}", flush=True
        )
        time.sleep(sleep)


def runs(last: int, client: Any = None) -> int:
    """Print the ``last`` KFP runs, newest first: name, id, state, created, and the error of a failed one."""
    from chicago_arrest.core import kfp_api

    client = client or kfp_api.client(_record().kfp_host)
    page = client.list_runs(page_size=last, sort_by="created_at desc")
    for item in page.runs or []:
        error = getattr(getattr(item, "error", None), "message", None) or ""
        print(
            f"{_run_line(item)} created {getattr(item, 'created_at', '?')}{'  error: ' + error if error else ''}"
        )
    print(f"{len(page.runs or [])} run(s) shown, newest first")
    return 0


def settle(timeout_s: float, poll_s: float = 5.0) -> int:
    """Wait until the predictor's newest revision runs the spec and is ready; 0, or 1 with its pods' state."""
    from chicago_arrest.core.errors import ReleaseError
    from chicago_arrest.core.settings import get_settings
    from chicago_arrest.release.kserve import KServeTraffic
    from chicago_arrest.release.rollout import wait_for_rollout

    traffic = KServeTraffic.from_settings(get_settings(), context=_record().context, record=_record())
    try:
        print(wait_for_rollout(traffic.watch(), timeout_s, poll_s=poll_s))
    except ReleaseError as exc:
        print(exc)
        return 1
    return 0


def stated_split() -> dict[str, Any]:
    """The split ``chicago-arrest serving status --target cluster`` reports (KServe + registry)."""
    from chicago_arrest.core.targets import resolve_target
    from chicago_arrest.release.ops import open_release

    resolved = resolve_target("cluster")
    resolved.use_cluster_mlflow()
    report = open_release("cluster", context=resolved.context(None)).status()
    if not report.get("serving"):
        raise SystemExit(f"FAIL: nothing served: {'; '.join(report.get('notes', []))}")
    return dict(report["serving"])


def within(count: int, n: int, percent: float) -> bool:
    """Whether ``count`` of ``n`` is a plausible draw at ``percent`` (4 standard deviations, plus 2 requests)."""
    p = percent / 100
    return abs(count - n * p) <= 4 * math.sqrt(n * p * (1 - p)) + 2


def sample(url: str, host: str, n: int) -> Counter[str]:
    """``n`` V2 requests (the golden request) through Kourier; the count of each ``model_version`` answering."""
    body = GOLDEN.read_bytes()
    versions: Counter[str] = Counter()
    for _ in range(n):
        request = urllib.request.Request(
            f"{url}/v2/models/{names.ISVC_NAME}/infer",
            data=body,
            headers={"Host": host, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            versions[str(json.load(response).get("model_version"))] += 1
    return versions


def traffic(
    host: str, n: int, expect: int | None, expect_champion: str | None, attempts: int, state: Path | None
) -> int:
    """Sample the served split and compare it with the stated one (and ``expect`` % for the challenger).

    ``expect_champion="previous-challenger"`` expects the challenger of the previous call (``state`` keeps the
    last split seen), i.e. the effect of a promote.
    """
    record = _record()
    url = record.ingress_url or "http://localhost:8180"
    if expect_champion == "previous-challenger":
        previous = json.loads(state.read_text()) if state and state.is_file() else {}
        expect_champion = str(previous.get("challenger"))
    for attempt in range(1, attempts + 1):
        split = stated_split()
        champion, challenger = str(split["champion"]), split.get("challenger")
        percent = int(split.get("canary_percent") or 0) if challenger else 0
        versions = sample(url, host, n)
        got = versions.get(str(challenger), 0) if challenger else 0
        others = set(versions) - {champion, str(challenger)}
        problems = []
        if expect is not None and percent != expect:
            problems.append(f"status says {percent} % for the challenger, expected {expect} %")
        if expect_champion is not None and champion != expect_champion:
            problems.append(f"status says champion {champion}, expected {expect_champion}")
        if others:
            problems.append(f"versions {sorted(others)} answered, neither champion nor challenger")
        if not within(got, n, percent):
            problems.append(f"challenger answered {got}/{n}, not about {percent} %")
        line = f"champion {champion}, challenger {challenger} at {percent} %: answers {dict(versions)} of {n}"
        if not problems:
            print(line)
            if state is not None:
                state.write_text(json.dumps(split, default=str))
            return 0
        if attempt < attempts:  # Knative moves traffic a few seconds after the spec changed
            time.sleep(10)
    print(f"{line}; {'; '.join(problems)}")
    return 1


def main(argv: list[str] | None = None) -> int:
    """Parse the sub-command and run it; returns the exit code."""
    parser = argparse.ArgumentParser(prog="smoke.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_land = sub.add_parser("land")
    p_land.add_argument("--seed", type=int, required=True)
    p_land.add_argument("--rows", type=int, default=4000)
    p_land.add_argument(
        "--endpoint", default=None, help="host:port of MinIO's S3 API (default: the record's)"
    )
    p_run = sub.add_parser("run")
    p_run.add_argument("--seed", type=int, required=True)
    p_run.add_argument("--canary-percent", type=int, default=10)
    p_run.add_argument("--timeout", type=int, default=1800)
    p_quiet = sub.add_parser("quiet", help="wait until no KFP run is active")
    p_quiet.add_argument("--timeout", type=float, default=1800)
    p_quiet.add_argument("--poll", type=float, default=30)
    p_runs = sub.add_parser("runs", help="the last KFP runs (make kind-diagnose)")
    p_runs.add_argument("--last", type=int, default=20)
    p_settle = sub.add_parser("settle", help="wait until the newest predictor revision is ready")
    p_settle.add_argument("--timeout", type=float, default=600)
    p_settle.add_argument("--poll", type=float, default=5)
    p_traffic = sub.add_parser("traffic")
    p_traffic.add_argument("--host-header", required=True)
    p_traffic.add_argument("--requests", type=int, default=200)
    p_traffic.add_argument(
        "--expect", type=int, default=None, help="the challenger's percent status must state"
    )
    p_traffic.add_argument("--expect-champion", default=None)
    p_traffic.add_argument("--attempts", type=int, default=6)
    p_traffic.add_argument("--state", type=Path, default=None, help="file that keeps the last split seen")
    args = parser.parse_args(argv)
    try:
        if args.command == "land":
            return land(args.seed, args.rows, args.endpoint)
        if args.command == "run":
            return run(args.seed, args.canary_percent, args.timeout)
        if args.command == "runs":
            return runs(args.last)
        if args.command == "quiet":
            return quiet(args.timeout, args.poll)
        if args.command == "settle":
            return settle(args.timeout, args.poll)
        return traffic(
            args.host_header, args.requests, args.expect, args.expect_champion, args.attempts, args.state
        )
    except SystemExit:
        raise
    except Exception as exc:  # one line for smoke.sh's FAIL, not a traceback
        print(f"{type(exc).__name__}: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
