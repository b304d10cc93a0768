"""One training path: ``model evaluate`` (:func:`evaluate_file`) gives exactly the pipeline steps' metrics.

The pipeline's step functions are chained here as the pipeline wires them (ingest → validate → split → train →
evaluate, enrich as a report branch), each reading the Parquet file the previous one wrote. ``model evaluate``
reads a shuffled copy of the same file: the landing orders the records by date and id, which is what the tree
models and the resampling depend on (the cause of the gap between the two paths before they shared the steps).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

from chicago_arrest.core.settings import Settings
from chicago_arrest.data.synthetic import generate_crimes, generate_stations
from chicago_arrest.steps import SUMMARY_PREFIX
from chicago_arrest.steps.data import enrich_step, ingest_step, split_step, validate_step
from chicago_arrest.steps.experiment import COLUMNS, evaluate_file
from chicago_arrest.steps.training import evaluate_step, train_step

MODELS = ("logreg", "random_forest")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same generated records twice: in export order, and shuffled (stations next to both)."""
    root = tmp_path_factory.mktemp("one-path")
    stations = generate_stations()
    crimes = generate_crimes(4_000, stations=stations, seed=5)
    crimes.loc[7, "arrest"] = "maybe"  # quarantined by the contract on both paths
    for name, frame in (("sorted", crimes), ("shuffled", crimes.sample(frac=1.0, random_state=3))):
        (root / name).mkdir()
        frame.to_csv(root / name / "crimes.csv", index=False)
        stations.to_csv(root / name / "police_stations.csv", index=False)
    return root / "sorted" / "crimes.csv", root / "shuffled" / "crimes.csv"


def pipeline_steps(source: Path, work: Path) -> dict:
    """The training pipeline's steps, wired as in src/chicago_arrest/pipelines/training.py."""
    ingested = ingest_step(
        work / "raw", work / "stations", source=str(source), settings=Settings(data_dir=work / "data")
    )
    counts = validate_step(work / "raw", work / "valid", work / "quarantine", work / "contract.html")
    window = split_step(
        work / "valid", work / "train", work / "test", test_months=2
    )  # the pipeline's default
    enriched = enrich_step(work / "valid", work / "stations", work / "enriched")
    for model_type in MODELS:
        train_step(work / "train", work / "stations", work / model_type, model_type=model_type)
    return evaluate_step(
        [str(work / m) for m in MODELS],
        work / "test",
        work / "report.html",
        work / "charts",
        ingest=ingested,
        validate=counts,
        enrich=enriched,
        window=window,
    ) | {"window": window, "rows_in": counts["rows_in"], "valid": counts["valid"]}


def test_model_evaluate_gives_the_pipeline_metrics(
    files: tuple[Path, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sorted_file, shuffled_file = files
    with caplog.at_level(logging.INFO, logger="chicago_arrest.steps"):
        pipeline = pipeline_steps(sorted_file, tmp_path)
    # Each step logs its one-line summary: a local run's console line for it.
    summaries = [
        r.getMessage().removeprefix(SUMMARY_PREFIX)
        for r in caplog.records
        if r.getMessage().startswith(SUMMARY_PREFIX)
    ]
    patterns = [
        r"4,000 rows in the window \d{4}-\d\d\.\.\d{4}-\d\d, \d+ month\(s\) landed, \d+ police stations",
        r"3,999 valid, 1 quarantined \(of 4,000\)",
        r"time split: train [\d,]+ rows \(\d{4}-\d\d-\d\d\.\.\d{4}-\d\d-\d\d\), test [\d,]+ \(.+\)",
        r"3,999 rows, median distance to a police station [\d,]+ m",
        *[r"calibration ROC-AUC 0\.\d{3}, fit [\d.,]+ s, \d+ features"] * len(MODELS),
        rf"selected {pipeline['selected']}: .+; its test ROC-AUC 0\.\d{{3}}, ECE 0\.\d{{3,4}}",
    ]
    assert len(summaries) == len(patterns), summaries
    for pattern, summary in zip(patterns, summaries, strict=True):
        assert re.fullmatch(pattern, summary), (pattern, summary)
    assert pipeline["rows_in"] == pipeline["valid"] + 1
    table, window = evaluate_file(shuffled_file, models=MODELS, output=tmp_path / "table.json")
    assert window == pipeline["window"]
    for row in table.to_dict(orient="records"):
        metrics = pipeline["candidates"][row["model"]]
        assert row["calibration_auc"] == metrics["calibration_auc"]
        for key in COLUMNS:
            assert row[key] == metrics[f"test_{key}"], (row["model"], key)
            assert row[f"no_ab_{key}"] == metrics[f"test_no_ab_{key}"], (row["model"], key)
        assert row["selected"] == (row["model"] == pipeline["selected"])
    written = json.loads((tmp_path / "table.json").read_text())
    assert written["window"] == window
    assert [r["model"] for r in written["models"]] == list(MODELS)
