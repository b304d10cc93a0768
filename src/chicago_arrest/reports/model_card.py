"""A model card for every registered version (Markdown and HTML), and the insights it is made from.

The evaluate step computes, for the selected model on the test window, the global importance (mean
|contribution| per raw field, :func:`chicago_arrest.model.explain.global_importance`), the per-district and
per-community-area table (:mod:`chicago_arrest.data.areas`) and the choropleth maps, and writes them next to its
charts (:func:`write_insights`). The register step turns them, with the version's metrics, into the card
(:func:`build_card`), logs it with the version's run (``model_card/model_card.md`` and ``.html``), tags the
version and names the card in its description (:func:`publish_model_card`); the KFP UI shows the HTML.
"""

from __future__ import annotations

import html
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from chicago_arrest.core.names import MODEL_NAME
from chicago_arrest.core.schema import ARREST_BASED_TYPES
from chicago_arrest.data.areas import (
    AREA_COLUMNS,
    LEVELS,
    MIN_ROWS_FOR_GAPS,
    area_tables,
    choropleths,
    gaps_sentence,
    worst_area_ece,
)
from chicago_arrest.reports.training import html_page, image_tag

if TYPE_CHECKING:
    import geopandas as gpd
    from mlflow.tracking import MlflowClient

    from chicago_arrest.data.areas import Level
    from chicago_arrest.model.artifact import ArrestModel
    from chicago_arrest.model.evaluate import Evaluation

log = logging.getLogger(__name__)

INSIGHTS_JSON = "insights.json"
MAPS_PNG = "area_maps.png"
CARD_DIR = "model_card"
CARD_MD = "model_card.md"
CARD_HTML = "model_card.html"
#: Version tag holding the card's artifact URI.
CARD_TAG = "model_card"
#: Test rows explained for the global importance (a seeded sample when the window is larger).
IMPORTANCE_ROWS = 20_000
#: Seconds the global importance may take in the evaluate step.
IMPORTANCE_BUDGET_S = 60.0


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
        out_dir: Folder to write into (``insights.json``, ``areas_<level>.json``, ``area_maps.png``).
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
    maps = None
    shape = (shapes or {}).get("community_area")
    if shape is not None:
        maps = choropleths(tables["community_area"], shape, out_dir / MAPS_PNG).name
    worst = {level: worst_area_ece(table, min_rows) for level, table in tables.items()}
    validate = (upstream or {}).get("validate") or {}
    insights = {
        "importance": {k: float(v) for k, v in importance.items()},
        "importance_rows": len(sample),
        "gaps": gaps_sentence(tables, min_rows),
        "min_rows": min_rows,
        "worst_area_ece": {level: {"area": a, "ece": e} for level, (a, e) in worst.items()},
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


def _load(out_dir: Path) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    path = out_dir / INSIGHTS_JSON
    insights = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    tables: dict[str, pd.DataFrame] = {}
    for level in LEVELS:
        p = out_dir / f"areas_{level}.json"
        if p.is_file():
            tables[level] = pd.read_json(p, orient="records", dtype={"area": str}).set_index("area")
    return insights, tables


def insight_sections(out_dir: Path) -> list[tuple[str, str]]:
    """Training-report sections (HTML) from :func:`write_insights`' files: importance, areas, maps."""
    insights, tables = _load(out_dir)
    sections: list[tuple[str, str]] = []
    if insights.get("importance"):
        frame = pd.Series(insights["importance"], name="mean |contribution|").rename_axis("raw field")
        sections.append(
            (
                "Global importance (selected model): mean |contribution| per raw field on the test window",
                f"<p class='note'>Log-odds of the uncalibrated score, {insights['importance_rows']:,} test "
                "rows (chicago_arrest.model.explain).</p>"
                + frame.reset_index().to_html(
                    index=False, float_format="{:.4f}".format, border=0, classes="t"
                ),
            )
        )
    for level, table in tables.items():
        sections.append((f"Per {level.replace('_', ' ')} (selected model, test window)", _html_table(table)))
    if insights.get("gaps"):
        sections.append(("Largest per-area gaps", f"<p>{html.escape(insights['gaps'])}</p>"))
    if insights.get("maps") and (out_dir / insights["maps"]).is_file():
        sections.append(("Maps per community area", image_tag(out_dir / insights["maps"])))
    return sections


def _html_table(table: pd.DataFrame) -> str:
    return (
        table.reset_index()
        .to_html(index=False, float_format="{:.3f}".format, border=0, classes="t", na_rep="-")
        .replace("<img", "&lt;img")
    )


def _md_table(frame: pd.DataFrame, digits: int = 3) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return "-" if math.isnan(v) else f"{v:.{digits}f}"
        return str(v).replace("|", "\\|")

    head = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body])


@dataclass
class Card:
    """The card's sections, rendered as Markdown and as HTML from the same content."""

    title: str
    sections: list[tuple[str, list[Any]]] = field(default_factory=list)

    def add(self, heading: str, *parts: Any) -> None:
        """A section of paragraphs (str), tables (DataFrame) and images (Path)."""
        self.sections.append((heading, list(parts)))

    def markdown(self) -> str:
        """The card as Markdown (images referenced by file name, next to the card)."""
        lines = [f"# {self.title}", ""]
        for heading, parts in self.sections:
            lines += [f"## {heading}", ""]
            for part in parts:
                if isinstance(part, pd.DataFrame):
                    lines += [_md_table(part), ""]
                elif isinstance(part, Path):
                    lines += [f"![{part.stem}]({part.name})", ""]
                else:
                    lines += [str(part), ""]
        return "\n".join(lines).rstrip() + "\n"

    def html(self) -> str:
        """The card as one self-contained HTML page (images inlined)."""
        out = []
        for heading, parts in self.sections:
            body = []
            for part in parts:
                if isinstance(part, pd.DataFrame):
                    body.append(
                        part.to_html(
                            index=False, float_format="{:.3f}".format, border=0, classes="t", na_rep="-"
                        )
                    )
                elif isinstance(part, Path):
                    body.append(image_tag(part) if part.is_file() else "")
                else:
                    body.append(f"<p>{html.escape(str(part))}</p>")
            out.append((heading, "\n".join(body)))
        return html_page(self.title, out)


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

    def rows(key: str, values: dict[str, Any] = window) -> str:
        try:  # KFP passes numbers as floats
            return f"{int(float(values[key])):,}"
        except (KeyError, TypeError, ValueError):
            return "?"

    card.add(
        SECTIONS[2],
        f"Source: {source or 'City of Chicago, Crimes - 2001 to present (Socrata ijzp-q8t2)'}. Trained on "
        f"{window.get('train_start', '?')} .. {window.get('train_end', '?')} ({rows('train_rows')} rows), tested "
        f"on {window.get('test_start', '?')} .. {window.get('test_end', '?')} ({rows('test_rows')} rows; "
        f"{window.get('kind', '?')} split). Rows read: {rows('rows_in', insights)}; quarantined by the data "
        f"contract: {rows('quarantined', insights)}.",
    )
    names = {"roc_auc": "ROC-AUC", "pr_auc": "PR-AUC", "ece": "ECE"}
    table = pd.DataFrame(
        [
            {
                "metric": label,
                "value": _metric(metrics, f"test_{k}"),
                "95 % low": _metric(metrics, f"test_{k}_ci_low"),
                "95 % high": _metric(metrics, f"test_{k}_ci_high"),
            }
            for k, label in names.items()
        ]
        + [
            {
                "metric": label,
                "value": _metric(metrics, f"test_{k}"),
                "95 % low": math.nan,
                "95 % high": math.nan,
            }
            for k, label in (
                ("brier", "Brier"),
                ("f1", "F1"),
                ("precision", "precision"),
                ("recall", "recall"),
            )
        ]
    )
    threshold_text = f" at the serving threshold {threshold:.2f}" if threshold is not None else ""
    card.add(
        SECTIONS[3],
        f"Percentile bootstrap intervals over the test rows (200 resamples); F1, precision and recall"
        f"{threshold_text}.",
        table,
    )
    calibration = charts_dir / "calibration.png"
    card.add(
        SECTIONS[4],
        f"The probability is calibrated (Platt or isotonic, on held-out training rows). ECE "
        f"{_metric(metrics, 'test_ece'):.4f} on the test window; worst test month "
        f"{_metric(metrics, 'test_ece_worst_month'):.4f}; worst area "
        f"{insights.get('ece_worst_area', float('nan')):.4f} (areas with at least "
        f"{insights.get('min_rows', MIN_ROWS_FOR_GAPS)} test rows). An area's ECE on a few dozen or hundred rows "
        "is inflated by sampling noise (15 bins): compare areas with each other rather than with the overall ECE.",
        *([calibration] if calibration.is_file() else []),
    )
    card.add(
        SECTIONS[5],
        f"{', '.join(sorted(ARREST_BASED_TYPES))} are recorded only when someone is arrested: their arrest "
        f"rate is close to 100 % by construction, and they make up "
        f"{insights.get('arrest_based_share', float('nan')):.1%} of the test rows. Without them: ROC-AUC "
        f"{_metric(metrics, 'test_no_ab_roc_auc'):.4f}, ECE {_metric(metrics, 'test_no_ab_ece'):.4f}.",
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
    for level, frame in tables.items():
        parts += [f"Per {level.replace('_', ' ')}:", frame.reset_index()[["area", "name", *AREA_COLUMNS]]]
    maps = insights.get("maps")
    if maps and (charts_dir / maps).is_file():
        parts.append(charts_dir / maps)
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
        insights = _load(charts)[0]
        if insights.get("maps") and (charts / insights["maps"]).is_file():
            shutil.copy(charts / insights["maps"], folder / insights["maps"])
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
