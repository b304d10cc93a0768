"""Strict request parsing: V2 (Open Inference Protocol, ``content_type: "pd"``) and V1 rows → a typed raw frame.

Every problem with a request raises :class:`kserve.errors.InvalidInput` (HTTP 400) with a message that names
the field, never a 500; more rows than ``max_rows`` raise :class:`TooManyRows` (HTTP 413). Values are read by the
parsers of :mod:`chicago_arrest.core.parsing`, the ones the data contract uses: a value the contract would
quarantine as ``bad_<kind>:<field>`` is a 400 here. What is accepted, per raw field
(:data:`chicago_arrest.core.schema.FIELDS`):

========================  ==================================  ============================================
field kind                V2 datatypes                         values
========================  ==================================  ============================================
datetime (``date``)       BYTES                                text starting with a full calendar date,
                                                               Chicago local time if naive (``now``,
                                                               ``2017``, ``2017-13-01``: 400)
string                    BYTES                                text
code (iucr, beat, ...)    BYTES, INT8..INT64, UINT8..UINT64    text or integers (``486`` → ``"0486"``) of
                                                               the field's shape once zero-padded
bool (``domestic``)       BOOL, BYTES                          booleans (BYTES and V1: also true/false/t/f/
                                                               1/0 text and the integers 0 and 1)
int / float               FP64, FP32, INT8..INT64, UINT*,      finite numbers (int fields: whole ones);
                          BYTES                                BYTES must read as such numbers
========================  ==================================  ============================================

Nulls (JSON ``null``, NaN, empty text) are accepted in every optional field. ``date``, ``primary_type`` and
``iucr`` are required, in every row. The report's ``id`` and ``case_number``
(:data:`chicago_arrest.core.schema.RECORD_KEYS`; V2 BYTES or integers, V1 text or integers, null allowed) may
come with the model's fields: they are checked like codes, never scored, and kept in
:attr:`ParsedRequest.keys` for the request log. Other inputs that are not model fields are ignored. Unknown
categories and missing coordinates are left to the model, which scores them.
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import orjson
import pandas as pd
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferInput, InferRequest

from chicago_arrest.core.parsing import parse_bools, parse_codes, parse_numbers, parse_timestamps
from chicago_arrest.core.schema import (
    FIELD_BY_NAME,
    MODEL_INPUT_COLUMNS,
    PREDICTION_REQUIRED,
    RECORD_KEYS,
    FieldSpec,
)

#: Output tensors of a V2 response.
PROBABILITY_OUTPUT = "arrest_probability"
ARREST_OUTPUT = "arrest"
OUTPUT_DATATYPES: dict[str, str] = {PROBABILITY_OUTPUT: "FP64", ARREST_OUTPUT: "BOOL"}

_INTS = ("INT64", "INT32", "INT16", "INT8", "UINT64", "UINT32", "UINT16", "UINT8")
#: V2 datatypes accepted per field kind (the first one is what metadata advertises).
ACCEPTED_DATATYPES: dict[str, tuple[str, ...]] = {
    "datetime": ("BYTES",),
    "string": ("BYTES",),
    "code": ("BYTES", *_INTS),
    "bool": ("BOOL", "BYTES"),
    "int": ("INT64", "FP64", "FP32", *_INTS[1:], "BYTES"),
    "float": ("FP64", "FP32", *_INTS, "BYTES"),
}
_SHOW = 3  # offending rows quoted in a message


class TooManyRows(InvalidInput):
    """More rows than the server accepts in one request (HTTP 413; gRPC: ``INVALID_ARGUMENT``)."""


@dataclass(frozen=True)
class ParsedRequest:
    """A validated request.

    Attributes:
        columns: The model fields present in the request, one typed array per field (datetimes parsed), all
            of ``rows`` values: what the model scores and the request log joins.
        rows: Number of rows.
        requested_outputs: Output names the client asked for (``None``: all).
        keys: The report's ``id`` and ``case_number`` per row (object arrays of text, ``None`` where absent),
            when the request carries them: logged, never scored.
    """

    columns: Mapping[str, Any]
    rows: int
    requested_outputs: tuple[str, ...] | None = None
    keys: Mapping[str, np.ndarray] | None = None

    @cached_property
    def frame(self) -> pd.DataFrame:
        """The columns as a frame, one row per record (built on first use: explanations need one)."""
        return pd.DataFrame(dict(self.columns), index=pd.RangeIndex(self.rows), copy=False)


def input_metadata() -> list[dict[str, Any]]:
    """V2 metadata of the inputs: one 1-D tensor per model field, with its natural datatype."""
    return [
        {"name": name, "datatype": _advertised(FIELD_BY_NAME[name]), "shape": [-1]}
        for name in MODEL_INPUT_COLUMNS
    ]


def output_metadata() -> list[dict[str, Any]]:
    """V2 metadata of the outputs."""
    return [{"name": name, "datatype": dt, "shape": [-1]} for name, dt in OUTPUT_DATATYPES.items()]


def _advertised(spec: FieldSpec) -> str:
    return spec.v2_datatype if spec.v2_datatype in ACCEPTED_DATATYPES[spec.kind] else "BYTES"


def _rows_list(rows: Sequence[int]) -> str:
    shown = ", ".join(str(r) for r in rows[:_SHOW])
    return shown + (f" and {len(rows) - _SHOW} more" if len(rows) > _SHOW else "")


# ------------------------------------------------------------------------------------------------------------
# Column converters (shared by V1 and V2)
# ------------------------------------------------------------------------------------------------------------


def _check_required(name: str, values: Sequence[Any]) -> None:
    types = set(map(type, values))
    if types == {int} or (types == {str} and "" not in values and not any(map(str.isspace, values))):
        return  # the usual case, checked at C speed
    empty = [
        i
        for i, v in enumerate(values)
        if v is None or v == "" or (type(v) is str and v.isspace()) or (type(v) is float and v != v)
    ]
    if empty:
        raise InvalidInput(f"field '{name}' is required but is empty in row(s) {_rows_list(empty)}")


#: Element types of clean columns, checked with one ``set(map(type, values))`` (C speed) before any loop.
_TEXT_TYPES = frozenset({str, type(None)})
_NUMBER_TYPES = frozenset({int, float, type(None)})
_BOOL_TYPES = frozenset({bool})


def _text_column(name: str, values: Sequence[Any], *, allow_int: bool) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    if set(map(type, values)) <= _TEXT_TYPES:
        out[:] = values
        return out
    bad: list[int] = []
    for i, v in enumerate(values):
        if v is None or isinstance(v, str):
            out[i] = v
        elif allow_int and isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_):
            out[i] = str(int(v))
        elif isinstance(v, float) and math.isnan(v):
            out[i] = None
        else:
            bad.append(i)
    if bad:
        what = "text or integers" if allow_int else "text"
        raise InvalidInput(
            f"field '{name}' must be {what}; got {type(values[bad[0]]).__name__} "
            f"{values[bad[0]]!r} in row(s) {_rows_list(bad)}"
        )
    return out


def _reject(
    name: str, values: Sequence[Any] | np.ndarray, bad: np.ndarray, lead: str, tail: str = ""
) -> None:
    """Raise ``field '<name>' <lead> <first bad value> in row(s) ...<tail>`` when any value is ``bad``."""
    if True in bad.tolist():  # faster than bad.any() for one request's few values
        rows = [int(i) for i in np.flatnonzero(bad)]
        raise InvalidInput(f"field '{name}' {lead} {values[rows[0]]!r} in row(s) {_rows_list(rows)}{tail}")


def _date_column(name: str, values: Sequence[Any]) -> np.ndarray:
    text = _text_column(name, values, allow_int=False)
    parsed = parse_timestamps(text)
    _reject(
        name,
        text,
        parsed.bad,
        "has a value that is not a timestamp:",
        "; expected ISO-8601 such as 2017-03-01T13:05:00.000 (Chicago local time)",
    )
    return parsed.values


def _bool_column(name: str, values: Sequence[Any], *, allow_text: bool) -> Any:
    types = set(map(type, values))
    if types <= _BOOL_TYPES:
        return np.asarray(values, dtype=bool)
    if not allow_text:  # a BOOL tensor carries booleans and nulls; text and 0/1 are for BYTES and V1 rows
        other = [
            not (v is None or isinstance(v, bool | np.bool_) or (type(v) is float and v != v)) for v in values
        ]
        _reject(name, values, np.array(other), "must be a boolean (the input is declared BOOL); got")
    parsed = parse_bools(list(values))
    _reject(name, values, parsed.bad, "must be a boolean (true/false); got")
    if parsed.values.isna().any():
        return parsed.values
    return parsed.values.to_numpy(dtype=bool)


def _number_column(spec: FieldSpec, values: Sequence[Any]) -> np.ndarray:
    numbers: Any = list(values)
    if set(map(type, values)) <= _NUMBER_TYPES:
        with contextlib.suppress(OverflowError):  # an integer beyond float64: the parser says so
            numbers = np.asarray(values, dtype=np.float64)  # None becomes NaN: the usual case, at C speed
    parsed = parse_numbers(numbers, integral=spec.kind == "int")
    whole = " whole" if spec.kind == "int" else ""
    _reject(spec.name, values, parsed.bad, f"must be a finite{whole} number; got")
    return parsed.values


def _code_column(spec: FieldSpec, values: Sequence[Any]) -> np.ndarray:
    text = _text_column(spec.name, values, allow_int=True)
    parsed = parse_codes(text, spec.pad, spec.pattern)
    _reject(spec.name, text, parsed.bad, f"must be a code of the shape {spec.pattern} once zero-padded; got")
    return parsed.values


def _column(spec: FieldSpec, values: Sequence[Any], datatype: str | None) -> Any:
    """Convert one field's values; ``datatype`` is the declared V2 datatype (``None`` for V1 JSON rows)."""
    if spec.name in PREDICTION_REQUIRED:
        _check_required(spec.name, values)
    if spec.kind == "datetime":
        return _date_column(spec.name, values)
    if spec.kind == "string":
        return _text_column(spec.name, values, allow_int=False)
    if spec.kind == "code":
        return _code_column(spec, values)
    if spec.kind == "bool":
        return _bool_column(spec.name, values, allow_text=datatype in (None, "BYTES"))
    if datatype == "BYTES" and not set(map(type, values)) <= _TEXT_TYPES:
        raise InvalidInput(f"field '{spec.name}' is declared BYTES, so its values must be text")
    return _number_column(spec, values)


# ------------------------------------------------------------------------------------------------------------
# V2
# ------------------------------------------------------------------------------------------------------------


def content_type(parameters: Any) -> str | None:
    """The request-level ``content_type`` parameter (REST dict or gRPC ``InferParameter`` map)."""
    if not parameters:
        return None
    try:
        value = parameters.get("content_type") if hasattr(parameters, "get") else None
    except (TypeError, ValueError):
        return None
    if value is None:
        return None
    if hasattr(value, "string_param"):
        return str(value.string_param)
    return value if isinstance(value, str) else str(value)


def wants_explanation(parameters: Any) -> bool:
    """Whether a V2 request asks for explanations (request parameter ``"explain": true``).

    Raises:
        InvalidInput: When ``explain`` is set to anything but a boolean.
    """
    if not parameters or not hasattr(parameters, "get"):
        return False
    try:
        value = parameters.get("explain")
    except (TypeError, ValueError):
        return False
    if value is None:
        return False
    if hasattr(value, "bool_param"):  # gRPC InferParameter
        return bool(value.bool_param)
    if isinstance(value, bool):
        return value
    raise InvalidInput(f'request parameter "explain" must be true or false; got {value!r}')


def _flatten(name: str, data: Any) -> list[Any]:
    if isinstance(data, np.ndarray):
        return data.ravel().tolist()
    if data is None:
        return []
    values = list(data)
    while values and isinstance(values[0], list | tuple):  # nested data ([[v], [v]] for shape [n, 1])
        if not all(isinstance(v, list | tuple) for v in values):
            raise InvalidInput(f"input '{name}' has ragged data: mix of lists and scalars")
        values = [x for v in values for x in v]
    return values


def _input_values(inp: InferInput) -> list[Any]:
    data = inp.data
    raw = getattr(inp, "_raw_data", None)
    if (data is None or len(data) == 0) and raw:
        # gRPC raw_input_contents: the values only exist as bytes.
        try:
            data = inp.as_numpy()
        except (ValueError, TypeError) as exc:
            raise InvalidInput(
                f"input '{inp.name}': raw data does not match shape {inp.shape}: {exc}"
            ) from exc
    values = _flatten(inp.name, data)
    if inp.datatype == "BYTES" and bytes in set(map(type, values)):
        try:
            values = [v.decode("utf-8") if isinstance(v, bytes) else v for v in values]
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"input '{inp.name}' has BYTES that are not UTF-8 text") from exc
    return values


def _rows_of(inp: InferInput) -> int:
    shape = inp.shape
    if not isinstance(shape, list | tuple) or not shape or not all(isinstance(d, int) for d in shape):
        raise InvalidInput(f"input '{inp.name}' needs a shape like [n]; got {shape!r}")
    dims = [int(d) for d in shape]
    if any(d < 0 for d in dims):
        raise InvalidInput(f"input '{inp.name}' has a negative dimension in shape {dims}")
    if len(dims) > 2 or (len(dims) == 2 and dims[1] != 1):
        raise InvalidInput(
            f"input '{inp.name}' must be a 1-D tensor of shape [n] (or [n, 1]); got shape {dims}"
        )
    return dims[0]


def claimed_rows(payload: Any) -> int:
    """How many records a request says it carries, without reading its data (a huge number when unclear).

    V2: the largest first dimension among the inputs' shapes; V1: the length of ``instances``. Used to choose
    where a request is scored; the parsers check the real counts.
    """
    unclear = sys.maxsize
    if isinstance(payload, InferRequest):
        rows = [inp.shape[0] for inp in payload.inputs if isinstance(inp.shape, list | tuple) and inp.shape]
        if not rows or not all(type(r) is int for r in rows):
            return unclear
        return max(rows)
    if isinstance(payload, dict) and isinstance(payload.get("instances"), list):
        return len(payload["instances"])
    return unclear


def parse_v2(payload: InferRequest, max_rows: int) -> ParsedRequest:
    """Validate a V2 request and return its rows.

    Args:
        payload: The decoded request (REST JSON, REST binary tensors or gRPC).
        max_rows: Most rows accepted.

    Returns:
        The parsed request.

    Raises:
        InvalidInput: On any problem, naming the field.
    """
    ctype = content_type(payload.parameters)
    if ctype != "pd":
        got = "no content_type" if ctype is None else f"content_type {ctype!r}"
        raise InvalidInput(
            f'request parameters must set "content_type": "pd" (one input per raw field, one value per row); '
            f"got {got} with {len(payload.inputs or [])} input(s)"
        )
    if not payload.inputs:
        raise InvalidInput(
            "request has no inputs: send one input per raw field (date, primary_type, iucr, ...)"
        )
    seen: set[str] = set()
    fields: dict[str, tuple[InferInput, int]] = {}
    keys: dict[str, tuple[InferInput, int]] = {}
    for inp in payload.inputs:
        if inp.name in seen:
            raise InvalidInput(f"input '{inp.name}' appears more than once")
        seen.add(inp.name)
        if inp.name in RECORD_KEYS:
            if inp.datatype not in ACCEPTED_DATATYPES["code"]:
                kinds = ", ".join(ACCEPTED_DATATYPES["code"])
                raise InvalidInput(f"input '{inp.name}' has datatype {inp.datatype}; accepted: {kinds}")
            keys[inp.name] = (inp, _rows_of(inp))
            continue
        spec = FIELD_BY_NAME.get(inp.name)
        if spec is None or not spec.model_input:
            continue  # extra fields are ignored
        accepted = ACCEPTED_DATATYPES[spec.kind]
        if inp.datatype not in accepted:
            raise InvalidInput(
                f"input '{inp.name}' has datatype {inp.datatype}; accepted: {', '.join(accepted)}"
            )
        fields[inp.name] = (inp, _rows_of(inp))
    missing = [name for name in PREDICTION_REQUIRED if name not in fields]
    if missing:
        raise InvalidInput(
            f"missing required input(s): {', '.join(missing)} (required: {', '.join(PREDICTION_REQUIRED)})"
        )
    rows = fields["date"][1]
    odd = [f"'{name}' has {n}" for name, (_, n) in {**fields, **keys}.items() if n != rows]
    if odd:
        raise InvalidInput(
            f"inputs disagree on the number of rows (shape[0]): 'date' has {rows}, {', '.join(odd[:_SHOW])}"
        )
    _check_rows(rows, max_rows)
    columns: dict[str, Any] = {}
    for name, (inp, n) in fields.items():
        values = _input_values(inp)
        if len(values) != n:
            raise InvalidInput(
                f"input '{name}' has shape {list(inp.shape)} but {len(values)} value(s) in data"
            )
        columns[name] = _column(FIELD_BY_NAME[name], values, inp.datatype)
    record_keys = {name: _key_column(name, _input_values(inp), n) for name, (inp, n) in keys.items()}
    return ParsedRequest(columns, rows, _requested_outputs(payload), record_keys or None)


def _key_column(name: str, values: Sequence[Any], rows: int) -> np.ndarray:
    """A report key (``id``, ``case_number``) as text per row, ``None`` where empty (never scored)."""
    if len(values) != rows:
        raise InvalidInput(f"input '{name}' has shape [{rows}] but {len(values)} value(s) in data")
    out = _text_column(name, values, allow_int=True)
    out[[v is None or (isinstance(v, str) and not v.strip()) for v in out]] = None
    return out


def _requested_outputs(payload: InferRequest) -> tuple[str, ...] | None:
    requested = payload.request_outputs
    if not requested:
        return None
    names = tuple(out.name for out in requested)
    unknown = [n for n in names if n not in OUTPUT_DATATYPES]
    if unknown:
        raise InvalidInput(
            f"unknown output(s) requested: {', '.join(unknown)}; outputs: {', '.join(OUTPUT_DATATYPES)}"
        )
    return names


def _check_rows(rows: int, max_rows: int) -> None:
    if rows == 0:
        raise InvalidInput("request has zero rows")
    if rows > max_rows:
        raise TooManyRows(
            f"request has {rows} rows; at most {max_rows} are accepted (ARREST_SERVER_MAX_ROWS)"
        )


# ------------------------------------------------------------------------------------------------------------
# V1
# ------------------------------------------------------------------------------------------------------------


def parse_v1(payload: Any, max_rows: int) -> ParsedRequest:
    """Validate a V1 request ``{"instances": [{field: value, ...}, ...]}`` and return its rows.

    Args:
        payload: The decoded JSON body (or raw bytes when the client sent no JSON content type).
        max_rows: Most rows accepted.

    Returns:
        The parsed request.

    Raises:
        InvalidInput: On any problem, naming the field.
    """
    if isinstance(payload, bytes | bytearray | str):
        try:
            payload = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(f"request body is not JSON: {exc}") from exc
    if not isinstance(payload, dict) or "instances" not in payload:
        raise InvalidInput(
            'V1 request body must be {"instances": [{"date": ..., "primary_type": ..., ...}, ...]}'
        )
    instances = payload["instances"]
    if not isinstance(instances, list):
        raise InvalidInput('"instances" must be a list of objects (one per row)')
    _check_rows(len(instances), max_rows)
    bad = [i for i, row in enumerate(instances) if not isinstance(row, dict)]
    if bad:
        raise InvalidInput(
            f'"instances" must hold objects of field: value; row(s) {_rows_list(bad)} are '
            f"{type(instances[bad[0]]).__name__}"
        )
    present = set().union(*(row.keys() for row in instances))
    missing = [name for name in PREDICTION_REQUIRED if name not in present]
    if missing:
        raise InvalidInput(
            f"missing required field(s): {', '.join(missing)} (required: {', '.join(PREDICTION_REQUIRED)})"
        )
    columns = {
        name: _column(FIELD_BY_NAME[name], [row.get(name) for row in instances], None)
        for name in MODEL_INPUT_COLUMNS
        if name in present
    }
    keys = {
        name: _key_column(name, [row.get(name) for row in instances], len(instances))
        for name in RECORD_KEYS
        if name in present
    }
    return ParsedRequest(columns, len(instances), keys=keys or None)


# ------------------------------------------------------------------------------------------------------------
# Malformed bodies rejected by FastAPI before the model sees them
# ------------------------------------------------------------------------------------------------------------


def describe_validation_errors(errors: Sequence[Mapping[str, Any]]) -> str:
    """One line from FastAPI/pydantic validation errors (the ``bytes`` alternative of the V2 body is dropped).

    Args:
        errors: ``RequestValidationError.errors()``.

    Returns:
        ``"inputs.0.data: Field required; ..."``.
    """
    parts: list[str] = []
    for err in errors:
        kind = err.get("type")
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "InferenceRequest")]
        if kind == "json_invalid":
            parts.append(f"body is not valid JSON ({(err.get('ctx') or {}).get('error', err.get('msg'))})")
            continue
        if kind == "missing" and not loc:
            parts.append("the request body is empty")
            continue
        if loc[:1] == ["bytes"] and len(errors) > 1:
            continue
        where = ".".join(loc) or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(dict.fromkeys(parts)) or "invalid request body"


async def request_validation_handler(request: Any, exc: Any) -> Any:
    """FastAPI exception handler: a malformed body (no ``inputs``, bad JSON, ...) is a 400, not a 422.

    Args:
        request: The request.
        exc: A ``fastapi.exceptions.RequestValidationError``.

    Returns:
        ``{"error": "invalid request: ..."}`` with status 400.
    """
    from fastapi.responses import ORJSONResponse

    return ORJSONResponse(
        status_code=400, content={"error": f"invalid request: {describe_validation_errors(exc.errors())}"}
    )
