"""Every HTML report and the model card read like reports: formatted numbers, area names, worst first, maps.

One small model is trained on generated records (with generated, named district and community-area boundaries)
and every report is rendered from it; the pages are scanned for machine-printed floats (``225381.0000``).
"""

from __future__ import annotations

import re
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import box

from chicago_arrest.data.areas import boundaries
from chicago_arrest.data.split import time_split
from chicago_arrest.data.synthetic import generate_crimes, generate_stations
from chicago_arrest.model.evaluate import evaluate_model, save_charts
from chicago_arrest.model.training import TrainConfig, train_model
from chicago_arrest.monitoring.drift import MonitorResult, Thresholds
from chicago_arrest.reports.format import metric
from chicago_arrest.reports.maps import maps_png
from chicago_arrest.reports.model_card import build_card, insight_sections, write_insights
from chicago_arrest.reports.monitoring import monitoring_report
from chicago_arrest.reports.training import candidate_row, contract_report, gate_report, training_report
from tests.code.test_report_format import RAW_FLOAT

WINDOW = {
    "train_start": "2017-01-01",
    "train_end": "2017-10-31",
    "test_start": "2017-11-01",
    "test_end": "2017-12-31",
    "train_rows": 225381.0,  # KFP hands numbers over as floats
    "test_rows": 7882.0,
    "kind": "time",
}


def _grid(level: str, keys: list[str]) -> gpd.GeoDataFrame:
    """Named squares over the generated records' extent, keyed like the City's exports."""
    cols = 6
    squares = []
    for n in range(len(keys)):
        lon0, lat0 = -87.95 + 0.07 * (n % cols), 41.62 + 0.07 * (n // cols)
        squares.append(box(lon0, lat0, lon0 + 0.07, lat0 + 0.07))
    key, name = ("dist_num", "dist_label") if level == "district" else ("area_numbe", "community")
    names = [f"{'DISTRICT' if level == 'district' else 'AREA'} NUMBER {k}" for k in keys]
    frame = gpd.GeoDataFrame({key: keys, name: names}, geometry=squares, crs="EPSG:4326")
    return boundaries(frame, level)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    stations = generate_stations()
    crimes = generate_crimes(3_000, stations=stations, seed=11)
    train, test, _ = time_split(crimes)
    model = train_model(train, stations, TrainConfig(model_type="logreg", backtest_folds=0, n_jobs=1)).model
    evaluation = evaluate_model(model, test)
    out = tmp_path_factory.mktemp("charts")
    districts = sorted(pd.to_numeric(test["district"], errors="coerce").dropna().astype(int).unique())
    communities = sorted(pd.to_numeric(test["community_area"], errors="coerce").dropna().astype(int).unique())
    shapes = {
        "district": _grid("district", [str(d) for d in districts]),
        "community_area": _grid("community_area", [str(c) for c in communities]),
    }
    insights = write_insights(
        model,
        evaluation,
        test,
        out,
        shapes=shapes,  # type: ignore[arg-type]
        upstream={"validate": {"rows_in": 225381.0, "quarantined": 12.0}},
        min_rows=5,
    )
    charts = save_charts([evaluation], out, pd.Series(insights["importance"]))
    info = model.info or {}
    candidates = pd.DataFrame([candidate_row(evaluation, info, "the only candidate")])
    upstream = {
        "ingest": {"rows": 225381.0},
        "validate": {"rows_in": 225381.0, "valid": 225369.0, "quarantined": 12.0},
        "split": WINDOW,
    }
    page = training_report([evaluation], charts, evaluation.name, candidates, upstream, insight_sections(out))
    card = build_card(
        version="3",
        model_type="logreg",
        window=WINDOW,
        metrics=evaluation.flat_metrics(),
        source="generated",
        charts_dir=out,
        threshold=model.threshold,
    )
    return {"out": out, "page": page, "card": card, "insights": insights, "evaluation": evaluation}


def _no_raw_floats(text: str) -> None:
    text = re.sub(r'src="data:image/png;base64,[^"]*"', "", text)  # inlined images are not numbers
    text = re.sub(r"<svg.*?</svg>", "", text, flags=re.S)  # nor chart coordinates
    found = RAW_FLOAT.findall(text)
    assert not found, f"machine-printed numbers: {found[:5]}"


def _row_order(page: str, names: list[str]) -> list[int]:
    return [page.index(n) for n in names]


def test_training_report_reads_like_a_report(run: dict[str, Any]) -> None:
    page = run["page"]
    _no_raw_floats(page)
    assert ">225,381<" in page  # the data flow's rows, not 225381.0000
    assert "Selected logreg: ROC-AUC" in page
    assert 'class="legend"' in page
    assert "<b>ECE</b>: expected calibration error" in page
    # Area names beside their numbers, in both levels' tables, and a map per level.
    assert re.search(r'<td class="l">\d+</td><td class="l">District Number \d+</td>', page)
    assert re.search(r'<td class="l">\d+</td><td class="l">Area Number \d+</td>', page)
    assert page.count("data:image/png;base64,") >= 4 + 2  # the charts and two maps
    assert "maps per police district" in page
    assert "maps per community area" in page


def _area_rows(page: str, level_heading: str) -> list[tuple[int, float]]:
    """(rows, ECE) of each row of a level's table, in the order shown."""
    section = page[page.index(level_heading) :]
    table = section[: section.index("</table>")]
    out = []
    for row in re.findall(r"<tr>(.*?)</tr>", table)[1:]:
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row)
        if cells and cells[0] != "unknown":
            ece = float(cells[6]) if cells[6] != "-" else float("nan")
            out.append((int(cells[2].replace(",", "")), ece))
    return out


def test_area_tables_are_worst_first(run: dict[str, Any]) -> None:
    for heading in ("Per police district (", "Per community area ("):
        rows = _area_rows(run["page"], heading)
        assert len(rows) > 3
        big = [ece for n, ece in rows if n >= 5]
        small = [n for n, _ in rows[len(big) :]]
        known = [e for e in big if e == e]
        assert known == sorted(known, reverse=True), heading  # largest calibration error first
        assert all(n < 5 for n in small)  # areas under min_rows come after the others


def test_model_card_markdown_and_html(run: dict[str, Any]) -> None:
    card = run["card"]
    md, page = card.markdown(), card.html()
    _no_raw_floats(md)
    _no_raw_floats(page)
    assert "(225,381 rows)" in md
    assert "Rows read: 225,381" in md
    assert "| no. | name | rows |" in md
    assert re.search(r"\| \d+ \| District Number \d+ \| [\d,]+ \| [\d.]+ % \|", md)
    assert f"![area maps district]({maps_png('district')})" in md
    assert "**ECE**: expected calibration error" in md
    worst = run["insights"]["worst_area_ece"]
    level = max(worst, key=lambda k: worst[k]["ece"])
    assert f"worst area {metric(worst[level]['ece'])} (" in md
    assert "Number" in md[md.index("worst area") : md.index("worst area") + 80]  # named
    assert page.count("<img") >= 2


def test_contract_gate_and_monitoring_reports() -> None:
    contract = contract_report(
        {"rows_in": 225381.0, "valid": 225369.0, "quarantined": 12.0},
        pd.DataFrame({"id": ["1", "2"], "date": ["now", "2017"], "latitude": [41.123456789, np.nan]}),
    )
    _no_raw_floats(contract)
    assert "225,369 valid of 225,381 rows; 12 quarantined" in contract
    assert ">41.1235<" in contract

    decision = {
        "challenger_version": "4",
        "champion_version": "3",
        "passed": True,
        "promoted": False,
        "reason": "challenger ROC-AUC 0.8123 >= champion 0.8100",
        "challenger": {
            "roc_auc": 0.812345678,
            "ece": 0.0123456,
            "pr_auc": 0.7,
            "brier": 0.1,
            "roc_auc_se": 0.0021,
        },
        "champion": {"roc_auc": 0.81, "ece": 0.011, "pr_auc": 0.69, "brier": 0.11},
    }
    gate = gate_report(decision, 10)
    _no_raw_floats(gate)
    assert ">0.812<" in gate
    assert ">0.0123<" in gate
    assert "passed: canary at 10 %" in gate

    result = MonitorResult(
        decision="drift",
        reasons=["primary_type PSI 0.3120 >= 0.2"],
        psi={"primary_type": 0.312345, "hour": 0.0123456, "district": 0.054321},
        prediction_psi=0.0456789,
        realised=None,
        reference={"roc_auc": 0.8912345, "pr_auc": 0.7712345, "ece": 0.0112345},
        current_prediction=[0.05] * 20,
        reference_prediction=[0.05] * 20,
        current_fields={},
        rows=225381,
        model_version="3",
        thresholds=Thresholds(),
        retrain="not needed",
    )
    page = monitoring_report(result, source="served traffic", calibration=None)
    _no_raw_floats(page)
    assert "225,381 (served traffic)" in page
    assert "1 field(s) drifted (primary_type)" in page
    psi = page[page.index("PSI table") :]
    assert psi.index("primary_type") < psi.index("district") < psi.index(">hour<")  # largest first


def test_model_evaluate_table_is_formatted() -> None:
    from chicago_arrest.steps.experiment import COLUMNS, markdown

    row = {c: 0.812345 for c in COLUMNS} | {f"no_ab_{c}": 0.0123456 for c in ("roc_auc", "pr_auc", "ece")}
    text = markdown(pd.DataFrame([{"model": "logreg", **row, "fit_s": 12.3456, "selected": True}]))
    assert "| logreg | 0.812 |" in text
    assert "| 0.0123 |" in text
    assert text.splitlines()[2].endswith("| 12.3 | yes |")
    assert "**ECE w/o AB**: ECE without the arrest-based types" in text
    _no_raw_floats(text)
