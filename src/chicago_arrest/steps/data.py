"""Data steps: land the raw records, apply the data contract, split; enrich is a report branch.

The model recomputes every feature from the raw fields (:class:`~chicago_arrest.model.features.RawFeatures`), so
split and train consume the validated records; :func:`enrich_step` materialises the features only for
inspection and the report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from chicago_arrest.core.names import WINDOW_MONTHS
from chicago_arrest.core.settings import Settings, get_settings
from chicago_arrest.reports.format import count
from chicago_arrest.steps import MetricsSink, kfp_safe, log_metrics, log_summary, read_dataset, write_dataset
from chicago_arrest.steps.retry import retry_safe


@retry_safe
def ingest_step(
    raw_out: str | Path,
    stations_out: str | Path,
    *,
    source: str = "",
    stations_source: str = "",
    months: int = WINDOW_MONTHS,
    refresh_months: int = 1,
    settings: Settings | None = None,
    raw_metadata: dict[str, Any] | None = None,
    metrics: MetricsSink | None = None,
) -> dict[str, Any]:
    """Land new months in the object store, then export the training window and the stations.

    Args:
        raw_out: Parquet path for the window's raw records (every value as text).
        stations_out: Parquet path for the police stations.
        source: Local CSV/Parquet in the Socrata schema; empty = the Socrata API.
        stations_source: Local stations file; empty = next to ``source``, else the store / Socrata.
        months: Months in the training window.
        refresh_months: Latest months re-landed even when present (Socrata records change).
        settings: Library settings (default: from the environment).
        raw_metadata: Metadata of the raw Dataset artifact, filled in (rows, first and last month).
        metrics: Receives rows, months landed and stations.

    Returns:
        Summary: source, window months, landed/skipped months, rows.
    """
    from chicago_arrest.core.store import make_store
    from chicago_arrest.data.ingest import ingest, load_undated, load_window
    from chicago_arrest.data.stations import load_stations

    settings = settings or get_settings()
    result = ingest(
        settings,
        source=source or None,
        months=months,
        refresh=refresh_months,
        stations_path=stations_source or None,
    )
    store = make_store(settings)
    # Undated (and future-dated) records travel with the window: the data contract quarantines them, never lost.
    raw = pd.concat([load_window(store, result.window), load_undated(store)], ignore_index=True)
    stations = load_stations(store)
    write_dataset(raw, raw_out)
    write_dataset(stations, stations_out)
    counted = (
        ("duplicates replaced", result.duplicates),
        ("undated", result.undated),
        ("future dated", result.future),
    )
    extras = [f"{what} {count(n)}" for what, n in counted if n]
    log_summary(
        f"{count(len(raw))} rows in the window {result.window[0]}..{result.window[-1]}, {len(result.landed)}"
        f" month(s) landed, {count(len(stations))} police stations"
        + (f" ({', '.join(extras)})" if extras else "")
    )
    if raw_metadata is not None:
        raw_metadata.update(
            {"rows": len(raw), "first_month": result.window[0], "last_month": result.window[-1]}
        )
    log_metrics(metrics, {"rows": len(raw), "months_landed": len(result.landed), "stations": len(stations)})
    return kfp_safe(
        {
            "source": result.source,
            "window": result.window,
            "landed": result.landed,
            "skipped": result.skipped,
            "rows": len(raw),
            "stations": len(stations),
            "store": store.uri(),
            "duplicates_replaced": result.duplicates,
            "undated": result.undated,
            "future_dated": result.future,
            "outside_window": result.outside_window,
        }
    )


def validate_step(
    raw_path: str | Path,
    valid_out: str | Path,
    quarantine_out: str | Path,
    report_out: str | Path | None = None,
    *,
    valid_metadata: dict[str, Any] | None = None,
    quarantine_metadata: dict[str, Any] | None = None,
    metrics: MetricsSink | None = None,
) -> dict[str, Any]:
    """Apply the data contract: valid rows to one Dataset, each invalid row (with its reason) to another.

    Args:
        raw_path: Raw records.
        valid_out: Records that satisfy the contract, with canonical types.
        quarantine_out: Every other record with its original values and a ``reason`` column.
        report_out: HTML report (counts and the first quarantined rows); none when empty.
        valid_metadata: Metadata of the valid Dataset (rows).
        quarantine_metadata: Metadata of the quarantine Dataset (rows).
        metrics: Receives every count.

    Returns:
        The contract's counts (rows_in, valid, quarantined, per reason, rows_without_coordinates).

    Raises:
        ValueError: When no row is valid (nothing to train on).
    """
    from chicago_arrest.data.validate import validate_records

    # Arrow-backed text: the contract parses it with Arrow's string kernels anyway (a year: 650 MB, not 960 MB).
    result = validate_records(read_dataset(raw_path, text="arrow"))
    write_dataset(result.valid, valid_out)
    quarantine = result.quarantine.astype({c: "string" for c in result.quarantine.columns if c != "reason"})
    write_dataset(quarantine, quarantine_out)
    counts = {k: (int(v) if isinstance(v, int | np.integer) else v) for k, v in result.counts.items()}
    log_summary(
        f"{count(counts['valid'])} valid, {count(counts['quarantined'])} quarantined (of {count(counts['rows_in'])})"
    )
    log_metrics(metrics, counts)
    if valid_metadata is not None:
        valid_metadata["rows"] = counts["valid"]
    if quarantine_metadata is not None:
        quarantine_metadata["rows"] = counts["quarantined"]
    if report_out:
        from chicago_arrest.reports.training import contract_report

        Path(report_out).parent.mkdir(parents=True, exist_ok=True)
        Path(report_out).write_text(contract_report(counts, quarantine.head(50)), encoding="utf-8")
    if counts["valid"] == 0:
        raise ValueError(f"the data contract rejected every row: {counts}")
    return counts


def enrich_step(
    valid_path: str | Path,
    stations_path: str | Path,
    enriched_out: str | Path,
    *,
    enriched_metadata: dict[str, Any] | None = None,
    metrics: MetricsSink | None = None,
) -> dict[str, Any]:
    """Add nearest-station distance and temporal features (rows without coordinates kept and flagged).

    A report branch: the model recomputes these features from the raw fields with the same code, so serving
    needs only raw records and training reads the validated records. This step materialises the features for
    inspection and summarises them for the training report.

    Returns:
        rows, rows_without_coordinates, distance quantiles (metres) and stations.
    """
    from chicago_arrest.data.enrich import DISTANCE, HAS_COORDINATES, StationIndex, enrich

    index = StationIndex.from_frame(read_dataset(stations_path))
    enriched = enrich(read_dataset(valid_path, text="arrow"), index)
    write_dataset(enriched, enriched_out)
    dist = enriched[DISTANCE].dropna()
    summary = {
        "rows": len(enriched),
        "rows_without_coordinates": int((enriched[HAS_COORDINATES] == 0).sum()),
        "distance_m_p50": float(dist.median()) if len(dist) else float("nan"),
        "distance_m_p95": float(dist.quantile(0.95)) if len(dist) else float("nan"),
        "stations": len(index.names),
    }
    log_summary(
        f"{count(len(enriched))} rows, median distance to a police station {count(summary['distance_m_p50'])} m"
    )
    log_metrics(metrics, summary)
    if enriched_metadata is not None:
        enriched_metadata["rows"] = summary["rows"]
    return summary


def split_step(
    records_path: str | Path,
    train_out: str | Path,
    test_out: str | Path,
    *,
    kind: str = "time",
    test_months: int = 1,
    train_metadata: dict[str, Any] | None = None,
    test_metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Split the validated records into train and test (time-based by default: test = the latest months).

    Args:
        records_path: Validated records.
        train_out: Training records.
        test_out: Test records.
        kind: ``time`` or ``random``.
        test_months: Latest months held out when ``kind`` is ``time``.
        train_metadata: Metadata of the train Dataset (rows, start, end).
        test_metadata: Metadata of the test Dataset (rows, start, end).

    Returns:
        The data window (dates and row counts).
    """
    from chicago_arrest.data.split import split_records

    records = read_dataset(records_path, text="arrow")  # text is only passed on: kept compact
    train, test, window = split_records(records, kind=kind, test_months=test_months)  # type: ignore[arg-type]
    write_dataset(train, train_out)
    write_dataset(test, test_out)
    w = window
    log_summary(
        f"{w.kind} split: train {count(w.train_rows)} rows ({w.train_start}..{w.train_end}), test {count(w.test_rows)}"
        f" ({w.test_start}..{w.test_end})"
    )
    for part, meta in (("train", train_metadata), ("test", test_metadata)):
        if meta is not None:
            meta.update({k: getattr(window, f"{part}_{k}") for k in ("rows", "start", "end")})
    return window.as_dict()
