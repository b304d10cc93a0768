"""A model card for every registered version (Markdown and HTML), and the insights it is made from.

The evaluate step computes, for the selected model on the test window, the global importance (mean
|contribution| per raw field, :func:`chicago_arrest.model.explain.global_importance`), the per-district and
per-community-area tables (:mod:`chicago_arrest.model.areas`) and the choropleth maps
(:mod:`chicago_arrest.reports.maps`), and writes them next to its
charts (:func:`write_insights`). The register step turns them, with the version's metrics, into the card
(:func:`build_card`), logs it with the version's run (``model_card/model_card.md`` and ``.html``), tags the
version and names the card in its description (:func:`publish_model_card`); the KFP UI shows the HTML.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from chicago_arrest.core.names import MODEL_NAME
from chicago_arrest.core.schema import ARREST_BASED_TYPES
from chicago_arrest.data.areas import LEVEL_LABELS, LEVELS
from chicago_arrest.model.areas import MIN_ROWS_FOR_GAPS, area_tables, largest_gaps, worst_area_ece
from chicago_arrest.reports.areas import AREA_VIEW, area_note, area_view, gaps_sentence
from chicago_arrest.reports.format import (
    COLUMNS,
    Column,
    count,
    html_page,
    html_table,
    image_tag,
    interval,
    md_table,
    metric,
    paragraph,
    rate,
    title_name,
)
from chicago_arrest.reports.maps import choropleths, maps_png

if TYPE_CHECKING:
    import geopandas as gpd
    from mlflow.tracking import MlflowClient

    from chicago_arrest.data.areas import Level
    from chicago_arrest.model.artifact import ArrestModel
    from chicago_arrest.model.evaluate import Evaluation

log = logging.getLogger(__name__)

INSIGHTS_JSON = "insights.json"
CARD_DIR = "model_card"
CARD_MD = "model_card.md"
CARD_HTML = "model_card.html"
#: Version tag holding the card's artifact URI.
CARD_TAG = "model_card"
#: Test rows explained for the global importance (a seeded sample when the window is larger). On the 2017 year
#: (XGBoost, Nov-Dec) 5,000 rows give every field's mean |contribution| within 1.7 % of 20,000 rows' and the
#: same ranking, for a quarter of the evaluate step's largest cost (7.6 s of CPU against 29 s; issue 27).
IMPORTANCE_ROWS = 5_000
#: Seconds the global importance may take in the evaluate step.
IMPORTANCE_BUDGET_S = 20.0


def write_insights(
    model: ArrestModel,
    evaluation: Evaluation,
    test: pd.DataFrame,
    out_dir: Path,
    *,
    shapes: dict[Level, gpd.GeoDataFrame | None] | None = None,
    upstream: dict[str, Any] | None = None,
    max_rows: int = IMPORTANCE_ROWS,
    min_rows: int = MIN_ROWS_FOR_GAPS,
    budget_s: float = IMPORTANCE_BUDGET_S,
) -> dict[str, Any]:
    """Global importance, per-area tables and maps of the selected model on the test window.

    Args:
        model: The selected model.
        evaluation: Its evaluation on ``test`` (labels, probabilities, threshold).
        test: The raw test records.
        out_dir: Folder to write into (``insights.json``, ``areas_<level>.json``, ``area_maps_<level>.png``).
        shapes: District and community-area boundaries (spatial fallback and maps); ``None``: fields only,
            no maps.
        upstream: Summaries of ingest / validate (rows, quarantined) for the card's data section.
        max_rows: Test rows explained for the importance.
        min_rows: Areas with fewer test rows are not named among the gaps nor used for the worst-area ECE.
        budget_s: Seconds the importance may take (fewer rows, a seeded sample, when explaining is slow).

    Returns:
        The insights (also written to ``insights.json``).
    """
    from chicago_arrest.model.explain import global_importance

    out_dir.mkdir(parents=True, exist_ok=True)
    shuffled = test.sample(frac=1.0, random_state=0)
    # Exact TreeSHAP of a deep random forest costs milliseconds per row: time a first slice and explain as
    # many rows as fit the time budget (every row of a logistic regression or XGBoost test window).
    probe = shuffled.head(min(200, len(shuffled)))
    start = time.perf_counter()
    global_importance(model, probe)
    per_row = (time.perf_counter() - start) / max(len(probe), 1)
    n = min(max_rows, len(shuffled), max(len(probe), int(budget_s / max(per_row, 1e-9))))
    sample = shuffled.head(n)
    importance = global_importance(model, sample)
    tables = area_tables(test, evaluation.y, evaluation.p, evaluation.threshold, shapes)
    for level, table in tables.items():
        table.reset_index().to_json(out_dir / f"areas_{level}.json", orient="records", indent=1)
    maps = {
        level: choropleths(
            tables[level], shape, out_dir / maps_png(level), level=level, min_rows=min_rows
        ).name
        for level, shape in (shapes or {}).items()
        if shape is not None and level in tables
    }
    worst = {level: worst_area_ece(table, min_rows) for level, table in tables.items()}
    validate = (upstream or {}).get("validate") or {}
    insights = {
        "importance": {k: float(v) for k, v in importance.items()},
        "importance_rows": len(sample),
        "gaps": gaps_sentence(largest_gaps(tables, min_rows), min_rows),
        "min_rows": min_rows,
        "worst_area_ece": {
            level: {"area": a, "name": str(tables[level].loc[a, "name"]) if a else "", "ece": e}
            for level, (a, e) in worst.items()
        },
        "ece_worst_area": float(np.nanmax([e for _, e in worst.values()] + [np.nan]))
        if any(not math.isnan(e) for _, e in worst.values())
        else float("nan"),
        "maps": maps,
        "rows_in": validate.get("rows_in"),
        "quarantined": validate.get("quarantined"),
        "arrest_based_share": float(evaluation.arrest_based.mean()) if len(evaluation.y) else float("nan"),
    }
    (out_dir / INSIGHTS_JSON).write_text(json.dumps(insights, indent=1, default=str), encoding="utf-8")
    return insights


def _load(out_dir: Path) -> tuple[dict[str, Any], dict[Level, pd.DataFrame]]:
    path = out_dir / INSIGHTS_JSON
    insights = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    tables: dict[Level, pd.DataFrame] = {}
    for level in LEVELS:
        p = out_dir / f"areas_{level}.json"
        if p.is_file():
            tables[level] = pd.read_json(p, orient="records", dtype={"area": str}).set_index("area")
    return insights, tables


def _maps(out_dir: Path, insights: dict[str, Any]) -> dict[Level, Path]:
    """The maps written by :func:`write_insights` that exist, by level."""
    maps = insights.get("maps") or {}
    if isinstance(maps, str):  # an evaluate step of an older release wrote one community-area map
        maps = {"community_area": maps}
    return {
        level: out_dir / maps[level]
        for level in LEVELS
        if level in maps and (out_dir / maps[level]).is_file()
    }


#: The importance table.
IMPORTANCE_VIEW = {
    "raw field": Column("raw field", "text"),
    "importance": Column(
        "mean |contribution|", "metric", "mean absolute log-odds contribution on the test rows"
    ),
}


def _importance(insights: dict[str, Any]) -> pd.DataFrame:
    series = pd.Series(insights.get("importance") or {}, dtype=float).sort_values(ascending=False)
    return pd.DataFrame({"raw field": series.index, "importance": series.to_numpy()})


def insight_sections(out_dir: Path) -> list[tuple[str, str]]:
    """Training-report sections (HTML) from :func:`write_insights`' files: importance, areas, maps."""
    insights, tables = _load(out_dir)
    min_rows = int(insights.get("min_rows", MIN_ROWS_FOR_GAPS))
    sections: list[tuple[str, str]] = []
    if insights.get("importance"):
        sections.append(
            (
                "Global importance of the selected model, largest first",
                paragraph(
                    f"Mean |contribution| per raw field to the log-odds of the uncalibrated score, on "
                    f"{count(insights['importance_rows'])} test rows (chicago_arrest.model.explain).",
                    "note",
                )
                + html_table(_importance(insights), IMPORTANCE_VIEW, legend=False),
            )
        )
    if insights.get("gaps"):
        sections.append(("Largest per-area gaps", paragraph(insights["gaps"])))
    maps = _maps(out_dir, insights)
    for level, table in tables.items():
        body = paragraph(area_note(level, min_rows), "note") + html_table(
            area_view(table, min_rows), AREA_VIEW
        )
        if level in maps:
            body += image_tag(maps[level], f"maps per {LEVEL_LABELS[level]}")
        sections.append((f"Per {LEVEL_LABELS[level]} (selected model, test window)", body))
    return sections


@dataclass(frozen=True)
class Table:
    """A table of a card: the rows in the order shown and how each column is shown."""

    frame: pd.DataFrame
    columns: Mapping[str, Column | str] | None = None


@dataclass
class Card:
    """The card's sections, rendered as Markdown and as HTML from the same content."""

    title: str
    summary: str = ""
    sections: list[tuple[str, list[Any]]] = field(default_factory=list)

    def add(self, heading: str, *parts: Any) -> None:
        """A section of paragraphs (str), tables (:class:`Table` or DataFrame) and images (Path)."""
        self.sections.append((heading, list(parts)))

    def markdown(self) -> str:
        """The card as Markdown (images referenced by file name, next to the card)."""
        lines = [f"# {self.title}", ""] + ([f"**{self.summary}**", ""] if self.summary else [])
        for heading, parts in self.sections:
            lines += [f"## {heading}", ""]
            for part in parts:
                if isinstance(part, Table | pd.DataFrame):
                    table = part if isinstance(part, Table) else Table(part)
                    lines += [md_table(table.frame, table.columns), ""]
                elif isinstance(part, Path):
                    lines += [f"![{part.stem.replace('_', ' ')}]({part.name})", ""]
                else:
                    lines += [str(part), ""]
        return "\n".join(lines).rstrip() + "\n"

    def html(self) -> str:
        """The card as one self-contained HTML page (images inlined)."""
        out = []
        for heading, parts in self.sections:
            body = []
            for part in parts:
                if isinstance(part, Table | pd.DataFrame):
                    table = part if isinstance(part, Table) else Table(part)
                    body.append(html_table(table.frame, table.columns))
                elif isinstance(part, Path):
                    body.append(image_tag(part, part.stem.replace("_", " ")) if part.is_file() else "")
                else:
                    body.append(paragraph(str(part)))
            out.append((heading, "\n".join(body)))
        return html_page(self.title, out, self.summary)


#: The sections of every card, in order (tested).
SECTIONS = (
    "Intended use",
    "Out-of-scope uses",
    "Data",
    "Metrics (test window, bootstrap 95 % intervals)",
    "Calibration",
    "Crime types recorded only upon arrest",
    "The label: how it is made and when it changes",
    "Location stands in for neighbourhood demographics",
    "Per area",
)


def _worst_area(insights: dict[str, Any]) -> str:
    """The worst area's ECE, with the area's number and name: ``0.0412 (community area 25, Austin)``."""
    worst = insights.get("worst_area_ece") or {}
    known = [
        (level, w) for level, w in worst.items() if w.get("area") and _metric(w, "ece") == _metric(w, "ece")
    ]
    if not known:
        return metric(insights.get("ece_worst_area"))
    level, w = max(known, key=lambda lw: _metric(lw[1], "ece"))
    name = w.get("name") or ""
    where = f"{LEVEL_LABELS[level]} {w['area']}" + (
        f", {title_name(name)}" if name and name != w["area"] else ""
    )
    return f"{metric(w['ece'])} ({where})"


def _metric(metrics: dict[str, Any], key: str) -> float:
    try:
        return float(metrics.get(key, float("nan")))
    except (TypeError, ValueError):
        return float("nan")


def build_card(
    *,
    version: str,
    model_type: str,
    window: dict[str, Any],
    metrics: dict[str, Any],
    source: str,
    charts_dir: Path,
    threshold: float | None = None,
) -> Card:
    """The model card of one registered version.

    Args:
        version: Registry version.
        model_type: The selected model's type.
        window: The data window (train/test start and end, rows, kind).
        metrics: The selected model's flat test metrics (``test_roc_auc``, ``test_roc_auc_ci_low``, ...).
        source: Where the data came from.
        charts_dir: The evaluate step's folder (insights, per-area tables, maps, calibration chart).
        threshold: The serving threshold.

    Returns:
        The :class:`Card` (``.markdown()``, ``.html()``).
    """
    insights, tables = _load(charts_dir)
    card = Card(f"Model card: {MODEL_NAME} version {version} ({model_type})")
    card.add(
        SECTIONS[0],
        "Aggregate analysis of enforcement patterns in Chicago (where and for which reported crimes arrests "
        "follow, and how that changes), research and teaching. The model estimates the probability that a "
        "crime reported to the Chicago Police Department leads to an arrest, from the report's own fields.",
    )
    card.add(
        SECTIONS[1],
        "Any decision about a person; patrol allocation or any other deployment of police; anything that acts "
        "on an individual case, suspect, victim or neighbourhood. The score describes past recording and "
        "enforcement practice, not guilt, risk or need.",
    )

    card.add(
        SECTIONS[2],
        f"Source: {source or 'City of Chicago, Crimes - 2001 to present (Socrata ijzp-q8t2)'}. Trained on "
        f"{window.get('train_start', '?')} to {window.get('train_end', '?')} ({count(window.get('train_rows'))} "
        f"rows), tested on {window.get('test_start', '?')} to {window.get('test_end', '?')} "
        f"({count(window.get('test_rows'))} rows; {window.get('kind', '?')} split). Rows read: "
        f"{count(insights.get('rows_in'))}; quarantined by the data contract: {count(insights.get('quarantined'))}.",
    )
    headline = [("roc_auc", True), ("pr_auc", True), ("ece", True), ("brier", False)]
    at_threshold = ("f1", "precision", "recall")
    table = pd.DataFrame(
        [
            {
                "metric": COLUMNS[k].header,
                "value": interval(
                    _metric(metrics, f"test_{k}"),
                    _metric(metrics, f"test_{k}_ci_low") if ci else math.nan,
                    _metric(metrics, f"test_{k}_ci_high") if ci else math.nan,
                    COLUMNS[k].kind,
                ),
                "meaning": COLUMNS[k].legend,
            }
            for k, ci in [*headline, *((k, False) for k in at_threshold)]
        ]
    )
    threshold_text = f" at the serving threshold {metric(threshold)}" if threshold is not None else ""
    card.summary = (
        f"ROC-AUC {metric(_metric(metrics, 'test_roc_auc'))}, ECE {metric(_metric(metrics, 'test_ece'))} on "
        f"{count(window.get('test_rows'))} test rows ({window.get('test_start', '?')} to "
        f"{window.get('test_end', '?')}). For aggregate analysis only: never for a decision about a person."
    )
    card.add(
        SECTIONS[3],
        f"Value (95 % interval): percentile bootstrap over the test rows (200 resamples); F1, precision and "
        f"recall{threshold_text}.",
        Table(table, {"metric": "metric", "value": "value (95 % interval)", "meaning": "meaning"}),
    )
    calibration = charts_dir / "calibration.png"
    card.add(
        SECTIONS[4],
        f"The probability is calibrated (Platt or isotonic, on held-out training rows). ECE "
        f"{metric(_metric(metrics, 'test_ece'))} on the test window; worst test month "
        f"{metric(_metric(metrics, 'test_ece_worst_month'))}; worst area "
        f"{_worst_area(insights)} (areas with at least "
        f"{insights.get('min_rows', MIN_ROWS_FOR_GAPS)} test rows). An area's ECE on a few dozen or hundred rows "
        "is inflated by sampling noise (15 bins): compare areas with each other rather than with the overall ECE.",
        *([calibration] if calibration.is_file() else []),
    )
    card.add(
        SECTIONS[5],
        f"{', '.join(sorted(ARREST_BASED_TYPES))} are recorded only when someone is arrested: their arrest "
        f"rate is close to 100 % by construction, and they make up "
        f"{rate(insights.get('arrest_based_share'))} of the test rows. Without them: ROC-AUC "
        f"{metric(_metric(metrics, 'test_no_ab_roc_auc'))}, ECE {metric(_metric(metrics, 'test_no_ab_ece'))}.",
    )
    card.add(
        SECTIONS[6],
        "The label is the report's arrest flag as published by the City. The flag is updated after the "
        "report when an arrest is made later, so recent months carry fewer arrests than they will: a record's "
        "label can change from false to true weeks or months after it was first published (the pipeline "
        "re-ingests recent months and retrains on the current flags).",
    )
    card.add(
        SECTIONS[7],
        "District, beat, ward, community area and the distance to the police station are model inputs. In "
        "Chicago they are strongly associated with the racial and economic make-up of neighbourhoods, so the "
        "model can reproduce differences in enforcement between neighbourhoods without using any personal "
        "attribute. The per-area figures below show where it is weaker.",
    )
    parts: list[Any] = [insights.get("gaps", "No per-area figures were computed.")]
    maps = _maps(charts_dir, insights)
    min_rows = int(insights.get("min_rows", MIN_ROWS_FOR_GAPS))
    for level, frame in tables.items():
        parts += [area_note(level, min_rows), Table(area_view(frame, min_rows), AREA_VIEW)]
        if level in maps:
            parts.append(maps[level])
    card.add(SECTIONS[8], *parts)
    return card


def publish_model_card(
    client: MlflowClient,
    run: dict[str, Any],
    *,
    model_type: str,
    window: dict[str, Any],
    source: str,
    charts_dir: str | Path,
    threshold: float | None = None,
    card_out: str | Path | None = None,
    name: str | None = None,
) -> str:
    """Build the version's card, log it with the version's run, tag the version and name it in its description.

    Args:
        client: MLflow client of the registry.
        run: The register step's result (``version``, ``run_id``, ``metrics``).
        model_type: The selected model's type.
        window: The data window.
        source: Where the data came from.
        charts_dir: The evaluate step's folder.
        threshold: The serving threshold.
        card_out: Also write the HTML card here (the KFP component's ``Output[HTML]``).
        name: Registered model name (default :data:`chicago_arrest.core.names.MODEL_NAME`).

    Returns:
        The card's artifact URI (``runs:/<run_id>/model_card/model_card.html``).
    """
    import shutil
    import tempfile

    from chicago_arrest.core.names import MODEL_NAME

    name = name or MODEL_NAME
    version, run_id = str(run["version"]), str(run["run_id"])
    charts = Path(charts_dir)
    card = build_card(
        version=version,
        model_type=model_type,
        window=window,
        metrics=run.get("metrics") or {},
        source=source,
        charts_dir=charts,
        threshold=threshold,
    )
    page = card.html()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / CARD_MD).write_text(card.markdown(), encoding="utf-8")
        (folder / CARD_HTML).write_text(page, encoding="utf-8")
        for path in _maps(charts, _load(charts)[0]).values():
            shutil.copy(path, folder / path.name)
        if (charts / "calibration.png").is_file():
            shutil.copy(charts / "calibration.png", folder / "calibration.png")
        client.log_artifacts(run_id, str(folder), CARD_DIR)
    uri = f"runs:/{run_id}/{CARD_DIR}/{CARD_HTML}"
    client.set_model_version_tag(name, version, CARD_TAG, uri)
    registered = client.get_model_version(name, version)
    lines = [x for x in (registered.description or "").splitlines() if not x.startswith("Model card:")]
    gate = [x for x in lines if x.startswith("Gate:")]
    kept = [x for x in lines if not x.startswith("Gate:")]
    line = f"Model card: {uri} (run artifacts {CARD_DIR}/{CARD_HTML} and {CARD_MD})."
    client.update_model_version(name, version, description="\n".join([*kept, line, *gate]))
    if card_out:
        Path(card_out).parent.mkdir(parents=True, exist_ok=True)
        Path(card_out).write_text(page, encoding="utf-8")
    log.info("model card of version %s: %s", version, uri)
    return uri
