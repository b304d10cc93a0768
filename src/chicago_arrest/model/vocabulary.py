"""What a trained model has seen: the crime types, their IUCR codes, the places and the community areas.

:func:`build_vocabulary` summarises the training records once, when the model is trained, into
``ArrestModel.info["vocabulary"]``: every crime type with its IUCR codes (each code's most frequent description
and FBI code), every location description, and for each community area its most frequent police district,
beat and ward. The model server's web page builds its form from it (``/ui/api/choices``), so the choices are
always those of the model that answers.

A model trained before the vocabulary existed still knows its categories: :func:`model_vocabulary` reads them
from the fitted encoders instead (one-hot and target-encoder categories), without the link between a crime
type and its codes (``grouped`` is false).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from chicago_arrest.core.schema import Records
from chicago_arrest.model.inputs import model_input_arrays

if TYPE_CHECKING:
    from chicago_arrest.model.artifact import ArrestModel

#: Version of the vocabulary's layout (kept in the model with it).
VOCABULARY_FORMAT = 1
#: Key of the vocabulary in ``ArrestModel.info``.
INFO_KEY = "vocabulary"
_COLUMNS = (
    "primary_type",
    "iucr",
    "description",
    "fbi_code",
    "location_description",
    "community_area",
    "district",
    "beat",
    "ward",
)


def _mode(values: pd.Series) -> str | None:
    """The most frequent value (ties: the smallest), ``None`` when there is none."""
    counts = values.dropna().value_counts()
    if counts.empty:
        return None
    top = counts[counts == counts.iloc[0]]
    return str(sorted(top.index.astype(str))[0])


def _area_order(area: str) -> tuple[float, str]:
    try:
        return float(area), area
    except ValueError:
        return float("inf"), area


def build_vocabulary(records: Records) -> dict[str, Any]:
    """Summarise training records into the categories the model knows.

    Values are normalised as the model normalises them at prediction time
    (:func:`chicago_arrest.model.inputs.model_input_arrays`: codes zero-padded, text upper-cased and trimmed).

    Args:
        records: Raw training records (Socrata field names).

    Returns:
        ``{"format", "rows", "grouped": True, "primary_types": [{"name", "rows", "codes": [{"iucr",
        "description", "fbi_code", "rows"}]}], "location_descriptions": [{"name", "rows"}],
        "community_areas": [{"area", "rows", "district", "beat", "ward"}]}``; names sorted, codes by code,
        areas by number.
    """
    arrays = model_input_arrays(records)
    frame = pd.DataFrame({c: pd.Series(arrays[c], dtype=object) for c in _COLUMNS})
    types = []
    for name, part in frame.dropna(subset=["primary_type"]).groupby("primary_type", sort=True):
        codes = []
        for code, rows in part.dropna(subset=["iucr"]).groupby("iucr", sort=True):
            codes.append(
                {
                    "iucr": str(code),
                    "description": _mode(rows["description"]),
                    "fbi_code": _mode(rows["fbi_code"]),
                    "rows": len(rows),
                }
            )
        types.append({"name": str(name), "rows": len(part), "codes": codes})
    places = frame["location_description"].dropna().value_counts()
    areas = []
    for area, rows in frame.dropna(subset=["community_area"]).groupby("community_area"):
        areas.append(
            {
                "area": str(area),
                "rows": len(rows),
                "district": _mode(rows["district"]),
                "beat": _mode(rows["beat"]),
                "ward": _mode(rows["ward"]),
            }
        )
    return {
        "format": VOCABULARY_FORMAT,
        "rows": len(frame),
        "grouped": True,
        "primary_types": types,
        "location_descriptions": [
            {"name": str(k), "rows": int(v)} for k, v in sorted(places.items(), key=lambda kv: str(kv[0]))
        ],
        "community_areas": sorted(areas, key=lambda a: _area_order(a["area"])),
    }


def encoder_categories(model: ArrestModel) -> dict[str, list[str]]:
    """The categories the fitted encoders of ``model`` hold, per feature column (missing-value marker excluded).

    One-hot columns (``primary_type``, ``fbi_code``, ``district``, ...) and target-encoded ones (``iucr``,
    ``description``, ``location_description``, ``beat``, ``ward``, ``community_area``, the interactions).
    """
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, TargetEncoder

    from chicago_arrest.model.feature_spec import MISSING

    if model.pipeline is None:
        raise RuntimeError("ArrestModel is not trained")
    encoder = model.pipeline.named_steps["encode"]
    out: dict[str, list[str]] = {}
    for name, transformer, columns in encoder.transformers_:
        if name == "remainder" or transformer == "drop":
            continue
        steps = transformer.steps if isinstance(transformer, Pipeline) else [(name, transformer)]
        for _, step in steps:
            if isinstance(step, OneHotEncoder | TargetEncoder):
                for column, cats in zip(columns, step.categories_, strict=True):
                    known = out.setdefault(column, [])
                    known.extend(str(c) for c in cats if str(c) != MISSING and str(c) not in known)
    return out


def _from_encoders(model: ArrestModel) -> dict[str, Any]:
    """A vocabulary read from the encoders: the same keys, no counts, codes not grouped by crime type."""
    cats = encoder_categories(model)
    codes = [
        {"iucr": c, "description": None, "fbi_code": None, "rows": None} for c in sorted(cats.get("iucr", []))
    ]
    return {
        "format": VOCABULARY_FORMAT,
        "rows": None,
        "grouped": False,
        "primary_types": [
            {"name": t, "rows": None, "codes": []} for t in sorted(cats.get("primary_type", []))
        ],
        "codes": codes,
        "location_descriptions": [
            {"name": p, "rows": None} for p in sorted(cats.get("location_description", []))
        ],
        "community_areas": [
            {"area": a, "rows": None, "district": None, "beat": None, "ward": None}
            for a in sorted(cats.get("community_area", []), key=_area_order)
        ],
    }


def model_vocabulary(model: ArrestModel) -> dict[str, Any]:
    """The vocabulary of a trained model: the one stored at training time, else read from its encoders."""
    stored = (model.info or {}).get(INFO_KEY)
    if isinstance(stored, dict) and stored.get("format") == VOCABULARY_FORMAT:
        return stored
    return _from_encoders(model)


def merge_vocabularies(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """One vocabulary from two (champion and challenger): the union, ``first``'s entries where both have one.

    Counts are not added (the two models may have been trained on overlapping windows): an entry keeps the
    ``rows`` of the vocabulary it came from.
    """

    def union(a: list[dict[str, Any]], b: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
        seen = {item[key] for item in a}
        return [*a, *(item for item in b if item[key] not in seen)]

    types = {t["name"]: dict(t) for t in second.get("primary_types", [])}
    merged_types = []
    for t in first.get("primary_types", []):
        other = types.pop(t["name"], None)
        codes = union(t.get("codes", []), other.get("codes", []) if other else [], "iucr")
        merged_types.append({**t, "codes": sorted(codes, key=lambda c: c["iucr"])})
    merged_types.extend(types.values())
    out = {
        **first,
        "grouped": bool(first.get("grouped")) and bool(second.get("grouped")),
        "primary_types": sorted(merged_types, key=lambda t: t["name"]),
        "location_descriptions": sorted(
            union(first.get("location_descriptions", []), second.get("location_descriptions", []), "name"),
            key=lambda p: p["name"],
        ),
        "community_areas": sorted(
            union(first.get("community_areas", []), second.get("community_areas", []), "area"),
            key=lambda a: _area_order(a["area"]),
        ),
    }
    if "codes" in first or "codes" in second:
        out["codes"] = sorted(
            union(first.get("codes", []), second.get("codes", []), "iucr"), key=lambda c: c["iucr"]
        )
    return out
