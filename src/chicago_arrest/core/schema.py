"""The raw record schema: Socrata API field names of "Crimes - 2001 to present" (ijzp-q8t2), and what each is.

One declaration used by ingest (column order), the data contract (types, required fields), the model (which
raw fields it reads) and the server (V2 input names and datatypes): each field's name, kind
(:data:`FieldKind`), padding and shape, whether it may be empty, whether the model reads it, its V2 datatype;
the label (:data:`LABEL`), the record keys, the arrest-based crime types, Chicago's bounding box and the
timestamp spellings. How a raw value of each kind is read is :mod:`chicago_arrest.core.parsing`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import pandas as pd

FieldKind = Literal["int", "float", "string", "code", "bool", "datetime"]


@dataclass(frozen=True)
class FieldSpec:
    """One raw field.

    Attributes:
        name: Socrata API field name.
        kind: Logical type. ``code`` is text with significant leading zeros (``"0486"``, ``"005"``).
        pad: Width to zero-pad a numeric-looking ``code`` to (0 = no padding).
        pattern: Shape of a ``code`` after upper-casing and zero-padding (full match); other shapes are bad.
        nullable: Whether an empty value is acceptable in a valid record.
        model_input: Whether the model reads it.
        v2_datatype: Open Inference Protocol datatype of the field as a V2 input tensor.
    """

    name: str
    kind: FieldKind
    pad: int = 0
    pattern: str = ""
    nullable: bool = True
    model_input: bool = False
    v2_datatype: str = "BYTES"


FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("id", "int", nullable=False, v2_datatype="INT64"),
    FieldSpec("case_number", "string"),
    FieldSpec("date", "datetime", nullable=False, model_input=True),
    FieldSpec("block", "string"),
    FieldSpec("iucr", "code", pad=4, pattern="[0-9A-Z]{4}", nullable=False, model_input=True),
    FieldSpec("primary_type", "string", nullable=False, model_input=True),
    FieldSpec("description", "string", model_input=True),
    FieldSpec("location_description", "string", model_input=True),
    FieldSpec("arrest", "bool", nullable=False, v2_datatype="BOOL"),
    FieldSpec("domestic", "bool", nullable=False, model_input=True, v2_datatype="BOOL"),
    FieldSpec("beat", "code", pad=4, pattern="[0-9]{4}", model_input=True),
    FieldSpec("district", "code", pad=3, pattern="[0-9]{3}", model_input=True),
    FieldSpec("ward", "int", model_input=True, v2_datatype="INT64"),
    FieldSpec("community_area", "int", model_input=True, v2_datatype="INT64"),
    FieldSpec("fbi_code", "code", pad=2, pattern="[0-9]{2}[A-Z]?", model_input=True),
    FieldSpec("x_coordinate", "float", model_input=True, v2_datatype="FP64"),
    FieldSpec("y_coordinate", "float", model_input=True, v2_datatype="FP64"),
    FieldSpec("year", "int", v2_datatype="INT64"),
    FieldSpec("updated_on", "datetime"),
    FieldSpec("latitude", "float", model_input=True, v2_datatype="FP64"),
    FieldSpec("longitude", "float", model_input=True, v2_datatype="FP64"),
)

FIELD_BY_NAME: dict[str, FieldSpec] = {f.name: f for f in FIELDS}
RAW_COLUMNS: tuple[str, ...] = tuple(f.name for f in FIELDS)
MODEL_INPUT_COLUMNS: tuple[str, ...] = tuple(f.name for f in FIELDS if f.model_input)
#: Fields a prediction request must carry; every other model input may be absent or null and still scores.
PREDICTION_REQUIRED: tuple[str, ...] = ("date", "primary_type", "iucr")
#: The label: whether the crime ended in an arrest (a ``bool`` field, read by
#: :func:`~chicago_arrest.core.parsing.labels`).
LABEL = "arrest"
ID = "id"
CASE_NUMBER = "case_number"
DATE = "date"
#: What identifies a report (not model inputs): a prediction request may carry them next to the model's fields;
#: the server logs them so that monitoring can join what was served with the label the City publishes later.
RECORD_KEYS: tuple[str, ...] = (ID, CASE_NUMBER)

#: Crime types recorded only upon an arrest (arrest rate ~100 %): near label leakage, reported separately.
ARREST_BASED_TYPES: frozenset[str] = frozenset(
    {
        "NARCOTICS",
        "PROSTITUTION",
        "GAMBLING",
        "LIQUOR LAW VIOLATION",
        "PUBLIC INDECENCY",
        "CONCEALED CARRY LICENSE VIOLATION",
        "OTHER NARCOTIC VIOLATION",
    }
)

#: Chicago's bounding box (WGS84) with a small margin; O'Hare (district 031) is inside.
CHICAGO_LAT = (41.60, 42.05)
CHICAGO_LON = (-87.96, -87.50)
#: The same box in Illinois State Plane East (EPSG:3435, US feet), the CRS of x_coordinate / y_coordinate.
CHICAGO_X = (1_085_000.0, 1_210_000.0)
CHICAGO_Y = (1_800_000.0, 1_955_000.0)

#: Socrata floating timestamps are Chicago local time without a zone; the portal's CSV export spells them
#: ``03/01/2017 01:05:00 PM``.
SOCRATA_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%f"
EXPORT_TIMESTAMP_FORMAT = "%m/%d/%Y %I:%M:%S %p"

# -- raw records as the model and the server hold them -----------------------------------------------------------

#: Raw records: a frame with Socrata field names, or the same columns as arrays of equal length by field name
#: (how the model server holds a parsed request: building a frame for one record costs more than scoring
#: it). :func:`~chicago_arrest.model.inputs.model_input_arrays` reads both alike.
Records: TypeAlias = pd.DataFrame | Mapping[str, Any]


def record_count(records: Records) -> int:
    """Number of records in a frame or in a mapping of columns (0 for an empty mapping)."""
    if isinstance(records, pd.DataFrame):
        return len(records)
    return len(next(iter(records.values()), ()))
