"""The model's raw inputs: each model input field read by its field's parser, spelled as the encoders expect.

The served model reads raw records (a frame, or the model server's parsed columns) through
:func:`model_input_arrays`: ``date`` and the coordinates as values, every other field as categorical text. The
reading itself is :mod:`chicago_arrest.core.parsing`'s (one parser per field kind, shared with ingest, the data
contract and the server); what it cannot read, the model treats as missing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from chicago_arrest.core.parsing import (
    map_distinct,
    parse_bools,
    parse_codes,
    parse_field,
    parse_numbers,
    parse_text,
)
from chicago_arrest.core.schema import FIELD_BY_NAME, MODEL_INPUT_COLUMNS, FieldSpec, Records, record_count

_BOOLEAN_WORDS = np.array(["false", "true"], dtype=object)


def category_array(values: Any, spec: FieldSpec) -> np.ndarray:
    """A categorical model input as an ``object`` array of text (``None`` where missing or unreadable).

    Read by the field's parser (:func:`parse_field`), then spelled as text: codes as read, whole numbers as
    integers (``24``), booleans ``true``/``false``, free text upper-cased.

    Args:
        values: Raw values.
        spec: The field (any kind but ``datetime`` and ``float``).

    Returns:
        ``object`` array of ``str`` or ``None``.
    """
    if spec.kind == "string":
        return parse_text(values, upper=True).values
    if spec.kind == "code":
        return parse_codes(values, spec.pad, spec.pattern).values
    if spec.kind == "bool":
        if not (isinstance(values, np.ndarray) and values.dtype == bool):  # else read already (the server's)
            parsed = parse_bools(values).values
            text = _BOOLEAN_WORDS[parsed.to_numpy(dtype=np.intp, na_value=0)]
            text[parsed.isna()] = None
            return text
        return _BOOLEAN_WORDS[values.astype(np.intp)]
    numbers = parse_numbers(values, integral=True).values
    as_text = map_distinct(numbers.astype(object), lambda v: str(int(v)))
    if as_text is not None:
        return as_text
    return np.array([None if v != v else str(int(v)) for v in numbers], dtype=object)


def model_input_arrays(records: Records) -> dict[str, np.ndarray]:
    """Raw records → one array per model input field, each read by its field's parser (never raises on values).

    ``date`` becomes ``datetime64[ns]`` (NaT where missing or unreadable: the model treats such a date as
    missing), coordinates ``float64`` (NaN), and every other field a categorical ``object`` array
    (:func:`category_array`). Missing fields are all-missing.

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
        if spec.kind in ("datetime", "float"):
            out[name] = parse_field(spec, col).values
        else:
            out[name] = category_array(col, spec)
    return out
