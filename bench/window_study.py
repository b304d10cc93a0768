"""The training window by evidence: MONTHS=12, 18 and 24 compared on later months, with paired bootstrap intervals.

Run: ``nice -n 10 .venv/bin/python -m bench.window_study`` (``--windows 12 18 24``, ``--models xgboost``,
``--seeds 0``, ``--only decide|nov-dec-2017``, ``--reuse`` to keep the runs already written). Writes
``bench/results/window_study.json`` (and the predictions, ``bench/results/window_study/*.parquet``) and prints
markdown tables.

Every run is :func:`chicago_arrest.steps.year_ahead.year_ahead`: the training pipeline's own steps on the
window (ingest of the files, the data contract, the time split with its two test months, the train step, the
evaluate step), then the selected model scores the months after the window.

- ``decide``: the files of 2015 and 2016, ``MONTHS`` = 12, 18, 24 (training on Jan-Oct 2016, Jul 2015-Oct 2016,
  Jan 2015-Oct 2016), scored on the window's own test months, Nov-Dec 2016. **The choice of the default is made
  here**: data before 2017, the walk-forward rule (train on the past, score the next months). The same models
  then score every month of 2017 (a year ahead), reported once, not used to choose.
- ``nov-dec-2017``: the files of 2016 and 2017, ``MONTHS`` = 12, 18, 24, scored on Nov-Dec 2017 (the
  pipeline's test months for the 2017 year), reported.

A longer window wins only when the paired bootstrap 95 % interval of its ROC-AUC gain over 12 months is above 0
(both models scored on the same resamples of the same rows) and its ECE is not worse beyond its own interval.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import pandas as pd

from bench.common import REPO_ROOT, machine, markdown_table, shared_data_dir
from chicago_arrest.core.runtime import cpu_seconds

DEFAULT_OUTPUT = REPO_ROOT / "bench" / "results" / "window_study.json"


def setups(data: Path) -> dict[str, tuple[str, str | None]]:
    """Name -> (training files, later files)."""
    return {
        "decide": (
            f"{data / 'crimes_2015.csv.gz'},{data / 'crimes_2016.csv.gz'}",
            str(data / "crimes_2017.csv.gz"),
        ),
        "nov-dec-2017": (f"{data / 'crimes_2016.csv.gz'},{data / 'crimes_2017.csv.gz'}", None),
    }


def summary_row(frame: pd.DataFrame) -> dict[str, float]:
    """ROC-AUC, PR-AUC, ECE (and without the arrest-based types) of one set of predictions."""
    from chicago_arrest.steps.year_ahead import scores

    return scores(frame["y"].to_numpy(), frame["p"].to_numpy(), frame["arrest_based"].to_numpy())


def compare(base: pd.DataFrame, other: pd.DataFrame) -> dict[str, float]:
    """Paired bootstrap of ``other - base`` on the same records (joined on id)."""
    from chicago_arrest.model.evaluate import paired_bootstrap

    joined = base.merge(other, on="id", suffixes=("_a", "_b"), validate="one_to_one")
    if len(joined) != len(base):
        raise ValueError("the two runs scored different records")
    return paired_bootstrap(joined["y_a"].to_numpy(), joined["p_b"].to_numpy(), joined["p_a"].to_numpy())


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the study and print the tables."""
    from chicago_arrest.steps.year_ahead import year_ahead

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--windows", type=int, nargs="+", default=[12, 18, 24])
    parser.add_argument("--models", nargs="+", default=["xgboost"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--only", choices=["decide", "nov-dec-2017"], default=None)
    parser.add_argument("--data", type=Path, default=shared_data_dir())
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument(
        "--reuse", action="store_true", help="keep runs already in --output (and their predictions)"
    )
    args = parser.parse_args(argv)
    folder = args.output.with_suffix("")
    folder.mkdir(parents=True, exist_ok=True)
    previous = json.loads(args.output.read_text()) if args.output.is_file() else {}
    runs: dict[str, Any] = previous.get("runs", {})
    for name, (train, later) in setups(args.data).items():
        if args.only and name != args.only:
            continue
        for seed in args.seeds:
            for months in args.windows:
                key = f"{name}/m{months}/s{seed}"
                if (
                    args.reuse
                    and key in runs
                    and (folder / f"{key.replace('/', '-')}-test.parquet").is_file()
                ):
                    continue
                wall, cpu = time.perf_counter(), cpu_seconds()
                result = year_ahead(train, later, months=months, models=args.models, random_state=seed)
                result.test_predictions.to_parquet(
                    folder / f"{name}-m{months}-s{seed}-test.parquet", index=False
                )
                if later:
                    result.predictions.to_parquet(
                        folder / f"{name}-m{months}-s{seed}-later.parquet", index=False
                    )
                runs[key] = {
                    **result.as_dict(),
                    "test": summary_row(result.test_predictions),
                    "seconds": {"wall_s": time.perf_counter() - wall, "cpu_s": cpu_seconds() - cpu},
                }
                t = runs[key]["test"]
                print(
                    f"{key}: train {result.window['train_start']}..{result.window['train_end']} "
                    f"({result.window['train_rows']:,} rows), test ROC-AUC {t['roc_auc']:.4f}, ECE {t['ece']:.4f}; "
                    f"train step {sum(c['cpu_s'] for c in result.costs.values()):.0f} s CPU",
                    flush=True,
                )
                args.output.write_text(json.dumps({"runs": runs}, indent=1, default=str), encoding="utf-8")
    comparisons: dict[str, Any] = {}
    for key in runs:
        name, _, seed = key.split("/")
        shortest = min(int(k.split("/")[1][1:]) for k in runs if k.startswith(f"{name}/"))
        base_key = f"{name}/m{shortest}/{seed}"
        if key == base_key or base_key not in runs:
            continue
        parts = [("test", "test")] + ([("later", "later")] if runs[key].get("later_source") else [])
        for part, suffix in parts:
            a = pd.read_parquet(folder / f"{base_key.replace('/', '-')}-{suffix}.parquet")
            b = pd.read_parquet(folder / f"{key.replace('/', '-')}-{suffix}.parquet")
            comparisons[f"{key} vs {base_key.split('/')[1]} ({part})"] = compare(a, b)
    result = {"machine": machine(), "models": args.models, "runs": runs, "comparisons": comparisons}
    args.output.write_text(json.dumps(result, indent=1, default=str), encoding="utf-8")
    rows = []
    for key, run in runs.items():
        t, w = run["test"], run["window"]
        later = run.get("overall") or {}
        rows.append(
            [
                key,
                f"{w['train_start']}..{w['train_end']}",
                f"{w['train_rows']:,}",
                f"{t['roc_auc']:.4f}",
                f"{t['ece']:.4f}",
                f"{later['roc_auc']:.4f}" if later else "",
                f"{later['ece_worst_month']:.4f}" if later else "",
                f"{later['no_ab_roc_auc']:.4f}" if later else "",
                "{:.0f} / {:.0f}".format(
                    *(sum(c[k] for c in run["costs"].values()) for k in ("cpu_s", "wall_s"))
                ),
            ]
        )
    print(
        markdown_table(
            [
                "run",
                "trained on",
                "rows",
                "test ROC-AUC",
                "test ECE",
                "later ROC-AUC",
                "later worst-month ECE",
                "later w/o arrest-based",
                "train step CPU / wall s",
            ],
            rows,
        )
    )
    print(
        markdown_table(
            ["comparison", "ROC-AUC diff [95 % CI]", "PR-AUC diff [95 % CI]", "ECE diff [95 % CI]"],
            [
                [name]
                + [
                    f"{c[f'{m}_diff']:+.4f} [{c[f'{m}_diff_ci_low']:+.4f}, {c[f'{m}_diff_ci_high']:+.4f}]"
                    for m in ("roc_auc", "pr_auc", "ece")
                ]
                for name, c in comparisons.items()
            ],
        )
    )
    return result


if __name__ == "__main__":
    main()
