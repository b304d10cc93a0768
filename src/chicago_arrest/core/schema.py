"""The raw record schema: Socrata API field names of "Crimes - 2001 to present" (ijzp-q8t2).

One declaration used by ingest (column order), the data contract (types, required fields), the model (which
raw fields it reads) and the server (V2 input names and datatypes).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, TypeAlias

import numpy as np
import pandas as pd

from chicago_arrest.core.names import CHICAGO_TZ

FieldKind = Literal["int", "float", "string", "code", "bool", "datetime"]


@dataclass(frozen=True)
class FieldSpec:
    """One raw field.

    Attributes:
        name: Socrata API field name.
        kind: Logical type. ``code`` is text with significant leading zeros (``"0486"``, ``"005"``).
        pad: Width to zero-pad a numeric-looking ``code`` to (0 = no padding).
        nullable: Whether an empty value is acceptable in a valid record.
        model_input: Whether the model reads it.
        v2_datatype: Open Inference Protocol datatype of the field as a V2 input tensor.
    """

    name: str
    kind: FieldKind
    pad: int = 0
    nullable: bool = True
    model_input: bool = False
    v2_datatype: str = "BYTES"


FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("id", "int", nullable=False, v2_datatype="INT64"),
    FieldSpec("case_number", "string"),
    FieldSpec("date", "datetime", nullable=False, model_input=True),
    FieldSpec("block", "string"),
    FieldSpec("iucr", "code", pad=4, nullable=False, model_input=True),
    FieldSpec("primary_type", "string", nullable=False, model_input=True),
    FieldSpec("description", "string", model_input=True),
    FieldSpec("location_description", "string", model_input=True),
    FieldSpec("arrest", "bool", nullable=False, v2_datatype="BOOL"),
    FieldSpec("domestic", "bool", nullable=False, model_input=True, v2_datatype="BOOL"),
    FieldSpec("beat", "code", pad=4, model_input=True),
    FieldSpec("district", "code", pad=3, model_input=True),
    FieldSpec("ward", "int", model_input=True, v2_datatype="INT64"),
    FieldSpec("community_area", "int", model_input=True, v2_datatype="INT64"),
    FieldSpec("fbi_code", "code", pad=2, model_input=True),
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
#: Fields every valid stored record must carry (the data contract).
CONTRACT_REQUIRED: tuple[str, ...] = tuple(f.name for f in FIELDS if not f.nullable)
LABEL = "arrest"
ID = "id"
DATE = "date"

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

#: Socrata floating timestamps are Chicago local time without a zone.
SOCRATA_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%f"

#: The spellings of true and false (after strip and lower-case) accepted everywhere: the data contract, the
#: model's raw-record coercion and the model server's requests.
TRUE_TEXT = frozenset({"true", "t", "1"})
FALSE_TEXT = frozenset({"false", "f", "0"})
#: A timestamp's text starts with a full calendar date, 2017-03-01... (ISO / Socrata) or 03/01/2017... (the CSV
#: export), then ends or goes on with the time: pandas and numpy would also read "now", "2017" or "20170105".
FULL_DATE = re.compile(r"(?:\d{4}-\d{1,2}-\d{1,2}|\d{1,2}/\d{1,2}/\d{4})(?:$|[T ])")
#: Local timestamps numpy parses exactly and without a warning (no zone, no trailing blank, at most ns).
NUMPY_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d(?:[T ]\d\d(?::\d\d(?::\d\d(?:\.\d{1,9})?)?)?)?\Z")


def parse_bool(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Parse booleans in the encodings seen in the wild (``true``/``false``, ``TRUE``/``FALSE``, bools, 0/1).

    Args:
        values: Raw values.

    Returns:
        ``(parsed, bad)``: a nullable ``boolean`` series (``<NA>`` where empty) and a mask of values that are
        present but not a recognised boolean.
    """
    if pd.api.types.is_bool_dtype(values):
        parsed = values.astype("boolean")
        return parsed, pd.Series(False, index=values.index)
    text = values.astype("string").str.strip().str.lower()
    is_true = text.isin(TRUE_TEXT)
    is_false = text.isin(FALSE_TEXT)
    empty = text.isna() | (text == "")
    parsed = pd.Series(pd.NA, index=values.index, dtype="boolean")
    parsed[is_true.fillna(False).to_numpy(bool)] = True
    parsed[is_false.fillna(False).to_numpy(bool)] = False
    bad = ~(is_true.fillna(False) | is_false.fillna(False) | empty)
    return parsed, bad.astype(bool)


def timestamp_array(values: np.ndarray) -> np.ndarray:
    """:func:`parse_timestamp` for an ``object`` array: ``datetime64[ns]``, ``NaT`` where empty or unparsable.

    The usual request (every value of the plain local shape) is parsed without building a series, which for
    one record costs more than the parsing.
    """
    plain = _plain_timestamps(values)
    if plain is not None:
        return plain
    return parse_timestamp(pd.Series(values, dtype=object)).to_numpy(dtype="datetime64[ns]")


def _plain_timestamps(raw: np.ndarray) -> np.ndarray | None:
    """``raw`` parsed by numpy when every value is missing or of the plain local shape, else ``None``.

    numpy's ISO-8601 parser is ~3x faster than pandas' and exact for the Socrata format, but it also takes
    "now", "2017" or "20170105", and it converts zone offsets with a warning: only values of the plain local
    shape (:data:`NUMPY_TIMESTAMP`) go through it. No warnings filter is involved: ``warnings.catch_warnings``
    is process-wide, and the server calls this from several threads.
    """
    if not all(v is None or (isinstance(v, str) and (not v or NUMPY_TIMESTAMP.match(v))) for v in raw):
        return None
    try:
        return np.asarray(raw, dtype=object).astype("datetime64[ns]")
    except (ValueError, TypeError):
        return None


def parse_timestamp(values: pd.Series) -> pd.Series:
    """Parse Socrata floating timestamps (and ISO-8601 variants) to naive Chicago-local datetimes.

    Args:
        values: Strings like ``2017-03-01T13:05:00.000`` or datetimes.

    Returns:
        ``datetime64[ns]`` series with ``NaT`` where a value is empty or unparsable. Zone-aware inputs are
        converted to America/Chicago and made naive.
    """
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert(CHICAGO_TZ).dt.tz_localize(None).astype("datetime64[ns]")
    if pd.api.types.is_datetime64_any_dtype(values):
        return values.astype("datetime64[ns]")
    plain = _plain_timestamps(values.to_numpy(dtype=object))
    if plain is not None:
        return pd.Series(plain, index=values.index)
    text = values.astype("string").str.strip()
    # A full calendar date must lead: pandas would otherwise read "now", "2017" or "20170105" as dates.
    text = text.where(text.str.match(FULL_DATE).fillna(False).astype(bool))
    out = pd.to_datetime(text, format=SOCRATA_TIMESTAMP_FORMAT, errors="coerce")
    missing = (out.isna() & text.notna()).to_numpy()
    if missing.any():
        rest = text[missing]
        out = out.copy()
        # Naive values are Chicago local time as they are; only explicit zones are converted.
        zoned = rest.str.contains(r"(?:Z|[+-]\d\d:?\d\d)$", regex=True).fillna(False).to_numpy(bool)
        if (~zoned).any():
            naive = rest[~zoned]
            out.loc[naive.index] = pd.to_datetime(naive, format="mixed", errors="coerce")
        if zoned.any():
            aware = pd.to_datetime(rest[zoned], format="mixed", errors="coerce", utc=True)
            out.loc[aware.index] = aware.dt.tz_convert(CHICAGO_TZ).dt.tz_localize(None)
    return out.astype("datetime64[ns]")


def normalize_code(values: pd.Series, pad: int) -> pd.Series:
    """Return codes as upper-case text, zero-padded to ``pad`` when numeric-looking (``"486"`` -> ``"0486"``).

    Args:
        values: Raw codes (text or numbers).
        pad: Target width; 0 leaves the width alone.

    Returns:
        A ``string`` series with ``<NA>`` for empty values.
    """
    text = values.astype("string").str.strip().str.upper()
    # Integers that went through a float column come back as "24.0".
    text = text.str.replace(r"^(\d+)\.0+$", r"\1", regex=True)
    text = text.mask(text == "")
    if pad:
        text = text.str.zfill(pad)
    return text


def to_number(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Parse numbers; return ``(float64 values, mask of present-but-unparsable values)``."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.astype("float64"), pd.Series(False, index=values.index)
    filled = values.to_numpy(dtype=object).copy()
    filled[pd.isna(filled)] = "nan"
    filled[filled == ""] = "nan"
    try:
        # Fast path for clean text; pd.to_numeric below handles (and reports) anything else.
        num = pd.Series(filled.astype("float64"), index=values.index)
        return num, pd.Series(False, index=values.index)
    except (ValueError, TypeError):
        pass
    text = values.astype("string").str.strip()
    num = pd.to_numeric(text, errors="coerce").astype("float64")
    bad = num.isna() & text.notna() & (text != "")
    return num, bad.astype(bool)


@lru_cache(maxsize=1 << 16)
def _clean_code(text: str, pad: int) -> str | None:
    value = text.strip().upper()
    if not value:
        return None
    match = _FLOAT_INT.fullmatch(value)
    if match:
        value = match.group(1)
    return value.zfill(pad) if pad else value


@lru_cache(maxsize=1 << 16)
def _clean_text(text: str) -> str | None:
    value = text.strip().upper()
    return value or None


@lru_cache(maxsize=256)
def _clean_bool(text: str) -> str | None:
    value = text.strip().lower()
    if value in TRUE_TEXT:
        return "true"
    if value in FALSE_TEXT:
        return "false"
    return None


_FLOAT_INT = re.compile(r"(\d+)\.0+")


def _is_missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


def _as_text(value: object) -> str:
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    return str(value)


#: From this many values on, per-value work runs once per distinct value (:func:`map_distinct`).
DISTINCT_FROM = 64
# Types whose values are equal only to values of the same type (True == 1 == 1.0 would merge in a hash table).
_NON_COLLIDING = frozenset({str, float, type(None), type(pd.NA)})
_MISSING_TYPES = frozenset({type(None), type(pd.NA)})


def map_distinct(
    values: np.ndarray, fn: Callable[[Any], Any], dtype: Any = object, missing: Any = None
) -> np.ndarray | None:
    """``fn`` of each value, computed once per distinct value (``missing`` for None/NaN/NA).

    Returns ``None`` (the caller maps value by value) below :data:`DISTINCT_FROM` values, where hashing costs
    more than it saves, and when the values mix types that compare equal across types (``True``, ``1``,
    ``1.0``), which one hash table would merge: values of one type (and None), or of str, float and None only.

    Args:
        values: One-dimensional ``object`` array.
        fn: The per-value function (applied to non-missing values only).
        dtype: Result dtype.
        missing: Result for missing values.

    Returns:
        The mapped array, or ``None``.
    """
    if len(values) < DISTINCT_FROM:
        return None
    types = set(map(type, values))
    if not (types <= _NON_COLLIDING or len(types - _MISSING_TYPES) == 1):
        return None
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    mapped = np.array([*(fn(u) for u in uniques), missing], dtype=dtype)
    return mapped[codes]  # code -1 (missing) takes the last entry


def category_array(values: pd.Series | np.ndarray, kind: FieldKind, pad: int = 0) -> np.ndarray:
    """Normalised categorical values as an object array (``None`` where missing or unparsable).

    Codes are upper-cased and zero-padded like :func:`normalize_code`; numbers that went through a float
    (``24.0``) come back as integers (``24``); booleans become ``"true"``/``"false"``. Per-value work is
    cached and, for many values, done once per distinct value, so this costs microseconds for one record and
    scales linearly for millions.

    Args:
        values: Raw values.
        kind: ``code``/``int`` (codes), ``bool`` or anything else (free text).
        pad: Zero-padding width for codes.

    Returns:
        ``object`` array of ``str`` or ``None``.
    """
    raw = values.to_numpy(dtype=object) if isinstance(values, pd.Series) else np.asarray(values, dtype=object)
    clean: Callable[[Any], str | None]
    if kind in ("code", "int"):
        clean = lambda v: _clean_code(_as_text(v), pad)  # noqa: E731
    elif kind == "bool":
        clean = lambda v: _clean_bool(_as_text(v))  # noqa: E731
    else:
        clean = lambda v: _clean_text(_as_text(v))  # noqa: E731
    mapped = map_distinct(raw, clean)
    if mapped is not None:
        return mapped
    return np.array([None if _is_missing(v) else clean(v) for v in raw], dtype=object)


#: Raw records: a frame with Socrata field names, or the same columns as arrays of equal length by field name
#: (how the model server holds a parsed request: building a frame for one record costs more than scoring
#: it). :func:`model_input_arrays` reads both alike.
Records: TypeAlias = pd.DataFrame | Mapping[str, Any]


def record_count(records: Records) -> int:
    """Number of records in a frame or in a mapping of columns (0 for an empty mapping)."""
    if isinstance(records, pd.DataFrame):
        return len(records)
    return len(next(iter(records.values()), ()))


def model_input_arrays(records: Records) -> dict[str, np.ndarray]:
    """Raw records → one array per model input field, leniently typed (never raises on values).

    ``date`` becomes ``datetime64[ns]`` (NaT where unparsable), coordinates ``float64`` (NaN), and every other
    field a normalised categorical object array (see :func:`category_array`). Missing fields are all-missing.

    Args:
        records: Raw records with Socrata field names, as a frame or as columns (extra fields are ignored).

    Returns:
        Field name → array of ``record_count(records)`` values.
    """
    n = record_count(records)
    out: dict[str, np.ndarray] = {}
    for name in MODEL_INPUT_COLUMNS:
        spec = FIELD_BY_NAME[name]
        col = records[name] if name in records else np.full(n, None, dtype=object)
        if spec.kind == "datetime":
            if isinstance(col, np.ndarray) and col.dtype.kind == "M":
                out[name] = col.astype("datetime64[ns]")  # parsed already (the model server's columns)
            else:
                out[name] = parse_timestamp(_series(col)).to_numpy(dtype="datetime64[ns]")
        elif spec.kind == "float":
            out[name] = number_array(col)
        else:
            out[name] = category_array(
                col if isinstance(col, np.ndarray) else _series(col), spec.kind, spec.pad
            )
    return out


def _series(values: Any) -> pd.Series:
    # A list stays object: the converters above decide what its values mean, not pandas' inference.
    return (
        values if isinstance(values, pd.Series) else pd.Series(values, dtype=getattr(values, "dtype", object))
    )


def number_array(values: pd.Series | np.ndarray) -> np.ndarray:
    """Numbers as a ``float64`` array, NaN where missing or unparsable (the fast path of :func:`to_number`)."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "iuf":
        return values.astype(float)
    values = _series(values)
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.to_numpy(dtype=float, na_value=np.nan)
    filled = values.to_numpy(dtype=object).copy()
    filled[pd.isna(filled)] = "nan"
    filled[filled == ""] = "nan"
    try:
        return filled.astype("float64")
    except (ValueError, TypeError):
        return to_number(values)[0].to_numpy(dtype=float, na_value=np.nan)


def arrest_based_mask(primary_type: pd.Series) -> np.ndarray:
    """Return a boolean mask of records whose crime type is recorded only upon arrest."""
    return primary_type.astype("string").str.upper().isin(ARREST_BASED_TYPES).fillna(False).to_numpy(bool)
