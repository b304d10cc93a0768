"""The pipeline's steps on one file, keeping everything the evaluate step decides on (backtest, search, intervals).

Run: ``nice -n 10 .venv/bin/python -m bench.backtest_evaluate`` (``--help``). Like ``chicago-arrest model
evaluate`` (the same step functions, the pipeline's defaults: 12 months, two test months), but it writes the
evaluate step's whole output: per candidate the walk-forward folds, the search, the cost, the test metrics with
bootstrap 95 % intervals and per test month, and the selection with its reason.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import REPO_ROOT, machine, shared_data_dir


def run(source: Path, models: list[str], test_months: int, search_budget_s: float) -> dict[str, Any]:
    """ingest → validate → split → train (each model type) → evaluate, in a throw-away local store."""
    from chicago_arrest.core.settings import Settings
    from chicago_arrest.steps.data import ingest_step, split_step, validate_step
    from chicago_arrest.steps.training import evaluate_step, train_step

    with tempfile.TemporaryDirectory(prefix="backtest-evaluate-") as tmp:
        work = Path(tmp)
        settings = Settings(data_dir=work / "data", store_backend="local")
        ingest_step(work / "raw", work / "stations", source=str(source), months=12, settings=settings)
        validate_step(work / "raw", work / "valid", work / "quarantine")
        window = split_step(work / "valid", work / "train", work / "test", test_months=test_months)
        trained = {}
        for model_type in models:
            start = time.perf_counter()
            trained[model_type] = train_step(
                work / "train",
                work / "stations",
                work / model_type,
                model_type=model_type,
                search_budget_s=search_budget_s,
            )
            trained[model_type]["wall_s"] = time.perf_counter() - start
        evaluation = evaluate_step(
            [str(work / m) for m in models], work / "test", work / "report.html", work / "charts"
        )
        per_month = {m: json.loads((work / "charts" / f"per_month_{m}.json").read_text()) for m in models}
        searches = {
            m: json.loads(p.read_text())
            for m in models
            if (p := work / "charts" / f"search_{m}.json").is_file()
        }
    return {
        "window": window,
        "trained": trained,
        "evaluation": evaluation,
        "per_month": per_month,
        "search": searches,
    }


def main() -> None:
    """Run and write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=shared_data_dir() / "crimes_sample.csv")
    parser.add_argument("--models", default="logreg,random_forest,xgboost")
    parser.add_argument("--test-months", type=int, default=2)
    parser.add_argument("--search-budget-s", type=float, default=0.0)
    parser.add_argument(
        "--output", type=Path, default=REPO_ROOT / "bench" / "results" / "backtest_evaluate.json"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("chicago_arrest.model.artifact").setLevel(logging.WARNING)
    out = {"source": str(args.source), "machine": machine(), "search_budget_s": args.search_budget_s}
    out.update(run(args.source, args.models.split(","), args.test_months, args.search_budget_s))
    out["load_average_at_end"] = list(__import__("os").getloadavg())
    args.output.write_text(json.dumps(out, indent=1, default=str), encoding="utf-8")
    ev = out["evaluation"]
    print("selected:", ev["selected"], "-", ev["selection"])
    for name, c in ev["candidates"].items():
        print(
            f"{name}: backtest {c['backtest_mean']:.4f} ± {c['backtest_std']:.4f}; "
            f"test ROC-AUC {c['test_roc_auc']:.4f} "
            f"[{c['test_roc_auc_ci_low']:.4f}, {c['test_roc_auc_ci_high']:.4f}], ECE {c['test_ece']:.4f}, "
            f"worst month ECE {c['test_ece_worst_month']:.4f}, no-AB ROC-AUC {c['test_no_ab_roc_auc']:.4f}, "
            f"{c['ms_per_record']:.2f} ms/record"
        )


if __name__ == "__main__":
    main()
