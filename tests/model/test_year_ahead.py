"""A year ahead and the window parameter, on two generated years: the pipeline's steps, then every later month.

Small generated data (three years of 3,600 records, logistic regression only) keeps this to seconds; the real
2016 -> 2017 figures are in docs/model.md ("A year ahead").
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from chicago_arrest.data.synthetic import generate_crimes, generate_stations
from chicago_arrest.steps.experiment import train_window
from chicago_arrest.steps.year_ahead import METRICS, markdown, monthly, year_ahead


@pytest.fixture(scope="module")
def years(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """2016 and 2017 as two files (gzip CSV and Parquet) and 2018 as a third, stations next to them."""
    root = tmp_path_factory.mktemp("years")
    stations = generate_stations()
    paths = []
    for year, fmt in ((2016, "csv.gz"), (2017, "parquet"), (2018, "csv")):
        frame = generate_crimes(3_600, start=f"{year}-01-01", months=12, seed=year, stations=stations)
        frame["id"] = (frame["id"].astype(int) + year * 1_000_000).astype(str)  # ids unique across years
        frame.loc[0, "date"] = f"{year}-01-01T00:00:00.000"  # the year's first instant (backdated reports)
        path = root / f"crimes_{year}.{fmt}"
        if fmt == "parquet":
            frame.to_parquet(path, index=False)
        else:
            frame.to_csv(path, index=False)
        paths.append(path)
    stations.to_csv(root / "police_stations.csv", index=False)
    return paths[0], paths[1], paths[2]


@pytest.mark.parametrize(
    ("months", "train_start"), [(12, "2017-01-01"), (18, "2016-07-01"), (24, "2016-01-01")]
)
def test_the_window_parameter_over_two_files(
    years: tuple[Path, Path, Path], tmp_path: Path, months: int, train_start: str
) -> None:
    """MONTHS sets how far back the pipeline trains; the two latest months stay the test months."""
    first, second, _ = years
    run = train_window(tmp_path, f"{first},{second}", months=months, models=["logreg"])
    assert run.ingested["window"][0] == train_start[:7]
    assert len(run.ingested["landed"]) == months
    assert run.window["train_start"] == train_start
    assert (run.window["test_start"], run.window["test_end"]) == ("2017-11-01", "2017-12-31")
    assert run.evaluation["selected"] == "logreg"
    assert run.costs["logreg"]["cpu_s"] > 0


def test_year_ahead_scores_every_later_month(years: tuple[Path, Path, Path]) -> None:
    first, second, third = years
    result = year_ahead(f"{first},{second}", third, months=24, models=["logreg"])
    assert result.window["train_start"] == "2016-01-01"
    assert result.window["train_end"] == "2017-10-31"
    assert result.per_month["month"].tolist() == [f"2018-{m:02d}" for m in range(1, 13)]
    assert int(result.per_month["rows"].sum()) == len(result.predictions) == result.overall["rows"]
    assert result.predictions["month"].str.startswith("2018").all()
    # Every record from midnight of the first day after the window on (a backdated report lands at 00:00).
    assert result.overall["rows"] == len(pd.read_csv(third))
    for metric in METRICS:
        assert 0.5 < result.overall[metric] <= 1.0 or metric == "ece"
        assert result.per_month[metric].notna().all()
    assert result.overall["roc_auc_ci_low"] <= result.overall["roc_auc"] <= result.overall["roc_auc_ci_high"]
    assert result.overall["ece_worst_month"] == pytest.approx(result.per_month["ece"].max())
    assert "| **all** |" in markdown(result)


def test_year_ahead_leaves_out_records_of_the_training_window(years: tuple[Path, Path, Path]) -> None:
    """Later files that overlap the window: only the months after it are scored."""
    first, second, _ = years
    result = year_ahead(first, f"{first},{second}", months=12, models=["logreg"])
    assert result.window["test_end"] == "2016-12-31"
    assert result.per_month["month"].tolist() == [f"2017-{m:02d}" for m in range(1, 13)]
    with pytest.raises(ValueError, match="no record dated after the training window"):
        year_ahead(second, first, months=12, models=["logreg"])


def test_monthly_metrics_without_arrest_based_types() -> None:
    """``no_ab_roc_auc`` leaves the arrest-based records out; the per-month rows add up to the whole."""
    rng = np.random.default_rng(0)
    n = 4_000
    y = rng.integers(0, 2, n)
    ab = rng.random(n) < 0.1
    p = np.where(ab, 0.99, np.clip(y * 0.3 + rng.random(n) * 0.7, 0, 1))
    y = np.where(ab, 1, y)
    frame = pd.DataFrame(
        {"month": np.where(np.arange(n) < n // 2, "2017-01", "2017-02"), "y": y, "p": p, "arrest_based": ab}
    )
    per_month, overall = monthly(frame)
    assert per_month["rows"].tolist() == [n // 2, n // 2]
    from sklearn.metrics import roc_auc_score

    assert overall["no_ab_roc_auc"] == pytest.approx(roc_auc_score(y[~ab], p[~ab]))
    assert overall["roc_auc"] > overall["no_ab_roc_auc"]  # the arrest-based records are the easy ones


def test_make_year_ahead_command(years: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """``chicago-arrest model year-ahead`` (what ``make year-ahead`` runs) prints the table and writes JSON."""
    from chicago_arrest.cli.main import app

    first, _, third = years
    output, predictions = tmp_path / "year.json", tmp_path / "p.parquet"
    args = ["model", "year-ahead", "--train", str(first), "--test", str(third), "--models", "logreg"]
    result = CliRunner().invoke(app, [*args, "--output", str(output), "--predictions", str(predictions)])
    assert result.exit_code == 0, result.output
    assert "| 2018-12 |" in result.output
    assert "trained on 2016-01-01..2016-10-31" in result.output
    saved = json.loads(output.read_text())
    assert saved["selected"] == "logreg"
    assert len(saved["per_month"]) == 12
    assert len(pd.read_parquet(predictions)) == saved["overall"]["rows"]
