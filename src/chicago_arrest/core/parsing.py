"""How raw values are read: one parser per field kind of the record schema (:mod:`chicago_arrest.core.schema`).

Used by every place that reads raw values: ingest (month grouping, dedupe, order, window), the data contract,
the split, the model's raw-record coercion, the model server's requests, batch scoring, monitoring and the
Vertex landing.

Each parser takes raw values (a series, an array or a list; text as landed, or already typed) and returns a
:class:`Parsed`: the values in the kind's canonical form, missing where a value is absent or unreadable, and
``bad``, the mask of values that are there but could not be read. What a caller does with ``bad`` is its own
rule (the contract quarantines, the server answers 400, ingest keeps the record out of every month, the model
treats the value as missing); what counts as readable is decided here only:

============  ==========================================  ===============================================
kind          reads                                       missing / bad
============  ==========================================  ===============================================
``datetime``  a full calendar date first (``2017-03-01``  missing: empty or blank; bad: anything else
              or ``03/01/2017``), then the time; naive    (``now``, ``today``, ``2017``, ``20170105``,
              = Chicago local, zone-aware converted       ``2017-13-01``, ``02/30/2017 10:00:00 AM``)
``bool``      real booleans, ``true/false/t/f/1/0`` (any  missing: empty; bad: other text, other numbers
              case), the integers 0 and 1
``code``      text or integers, upper-cased, ``24.0`` ->  missing: empty; bad: not the field's
              ``24``, zero-padded to the field's width    :attr:`FieldSpec.pattern` after padding
``int``       finite integral numbers (text or numbers)   missing: empty, ``nan``; bad: other text,
``float``     finite numbers (text or numbers)            booleans, ``inf``, ``1_000``, ``2.5`` for int
``string``    text, stripped                              missing: empty or blank; never bad
label         ``arrest`` read as ``bool``: :func:`labels`  unknown: missing or bad
============  ==========================================  ===============================================
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from chicago_arrest.core.errors import ArrestError
from chicago_arrest.core.names import CHICAGO_TZ
from chicago_arrest.core.schema import (
    ARREST_BASED_TYPES,
    EXPORT_TIMESTAMP_FORMAT,
    LABEL,
    SOCRATA_TIMESTAMP_FORMAT,
    FieldSpec,
    Records,
)

#: The spellings of true and false (after strip and lower-case); the integers 0 and 1 are read too.
TRUE_TEXT = frozenset({"true", "t", "1"})
FALSE_TEXT = frozenset({"false", "f", "0"})
#: A timestamp's text starts with a full calendar date, 2017-03-01... (ISO / Socrata) or 03/01/2017... (the CSV
#: export), then ends or goes on with the time: pandas and numpy would also read "now", "2017" or "20170105".
FULL_DATE = re.compile(r"(?:\d{4}-\d{1,2}-\d{1,2}|\d{1,2}/\d{1,2}/\d{4})(?:$|[T ])")
#: Local timestamps numpy parses exactly and without a warning (no zone, no blank, at most ns), in the years
#: 1700-2199: numpy wraps a year outside ``datetime64[ns]`` (9999 became 1816) where pandas says NaT.
NUMPY_TIMESTAMP = re.compile(
    r"(?:1[7-9]|2[01])\d\d-\d\d-\d\d(?:[T ]\d\d(?::\d\d(?::\d\d(?:\.\d{1,9})?)?)?)?\Z"
)
#: An explicit zone at the end of a timestamp: ``Z``, ``UTC``, ``GMT`` or a numeric offset (``+01``, ``-05:00``).
_ZONE = re.compile(r"\s*(?:Z|UTC|GMT|[+-]\d\d(?::?\d\d)?)$", re.IGNORECASE)
#: What may follow a timestamp's calendar date besides a zone: the time, ``T``, and AM/PM (no zone names).
_LOCAL_TIME = re.compile(r"[0-9T:./ -]*(?:\s*[AP]M)?", re.IGNORECASE)
#: From this many values on, text is checked with Arrow kernels instead of a Python loop.
VECTOR_FROM = 4096
#: From this many values on, per-value work runs once per distinct value (:func:`map_distinct`).
DISTINCT_FROM = 64
#: Python's whitespace (what ``str.strip`` removes), for Arrow's trim to remove the same characters.
_WHITESPACE = "".join(chr(c) for c in range(0x3001) if chr(c).isspace())
_FLOAT_INT = re.compile(r"(\d+)\.0+")
# A per-value reader's answer for a value that is there but unreadable (``None`` means missing).
_BAD: Any = object()


class FieldError(ArrestError, ValueError):
    """A field's values cannot be used; the message names the field and the reason.

    Attributes:
        field: The field's name.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"field '{field}' {reason}")
        self.field = field


class Parsed(NamedTuple):
    """A field's raw values as its parser read them.

    Attributes:
        values: The kind's canonical form, missing where a value is absent or unreadable: ``datetime64[ns]``
            (NaT, Chicago local time), ``float64`` (NaN), a pandas ``BooleanArray`` (NA), or an ``object``
            array of ``str`` (``None``) for codes and text.
        bad: Mask of values that are there but could not be read.
    """

    values: Any
    bad: np.ndarray

    @property
    def missing(self) -> np.ndarray:
        """Mask of values that are absent (empty, blank, null): neither read nor :attr:`bad`."""
        return np.asarray(pd.isna(self.values), dtype=bool) & ~self.bad

    @property
    def given(self) -> np.ndarray:
        """Mask of values that are there, read or :attr:`bad`."""
        return ~self.missing


def parse_field(spec: FieldSpec, values: Any) -> Parsed:
    """Read the raw values (series, array or list) of the field ``spec`` with its kind's parser."""
    if spec.kind == "datetime":
        return parse_timestamps(values)
    if spec.kind == "bool":
        return parse_bools(values)
    if spec.kind == "code":
        return parse_codes(values, spec.pad, spec.pattern)
    if spec.kind in ("int", "float"):
        return parse_numbers(values, integral=spec.kind == "int")
    return parse_text(values)


def parse_timestamps(values: Any, *, tz: str = CHICAGO_TZ) -> Parsed:
    """Read timestamps as naive local times (Chicago's by default).

    A value must start with a full calendar date (:data:`FULL_DATE`): ``2017-03-01T13:05:00.000`` (Socrata),
    other ISO-8601 spellings, ``03/01/2017 01:05:00 PM`` (the CSV export); a zone, if any, as ``Z``, ``UTC``,
    ``GMT`` or an offset. Naive values are local time as they are; zone-aware ones are converted to ``tz``.
    ``now``, ``2017``, ``20170105``, ``2017-13-01``, zone names (``CST``) and years outside ``datetime64[ns]``
    are bad. Values of the plain local shape (:data:`NUMPY_TIMESTAMP`, nearly all) are parsed by numpy, ~3x faster
    than pandas (their shape checked value by value for one request, with Arrow kernels for a year of records);
    the rest by pandas. No warnings filter is touched (process-wide, and the server parses in several threads).

    Args:
        values: Text, datetimes (zone-aware ones are converted) or ``datetime64`` values.
        tz: The zone of the local times (``UTC`` reads a zone-aware value's UTC fields).

    Returns:
        ``datetime64[ns]`` values (NaT where missing or bad) and the mask of bad values.
    """
    dtype = getattr(values, "dtype", None)
    if isinstance(dtype, pd.DatetimeTZDtype):
        local = pd.Series(values).dt.tz_convert(tz).dt.tz_localize(None)
        return Parsed(local.to_numpy(dtype="datetime64[ns]"), np.zeros(len(local), dtype=bool))
    if isinstance(dtype, np.dtype) and dtype.kind == "M":
        return Parsed(np.asarray(values, dtype="datetime64[ns]"), np.zeros(len(values), dtype=bool))
    raw = _objects(values)
    n = len(raw)
    plain = _plain_timestamp_mask(raw)
    if plain is None:  # every value missing or plain: the usual case
        try:
            return Parsed(raw.astype("datetime64[ns]"), np.zeros(n, dtype=bool))
        except (ValueError, TypeError):  # an impossible date of the plain shape (2017-02-30)
            plain = np.zeros(n, dtype=bool)
    out = np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")
    if plain.any():
        try:
            out[plain] = raw[plain].astype("datetime64[ns]")
        except (ValueError, TypeError):
            plain[:] = False
    rest = ~plain
    text = np.array(
        [None if _is_missing(v) else (_as_text(v).strip() or None) for v in raw[rest]], dtype=object
    )
    out[rest] = _timestamps_of_text(text, tz)
    bad = np.zeros(n, dtype=bool)
    bad[rest] = pd.notna(text) & np.isnat(out[rest])
    return Parsed(out, bad)


def _plain_timestamp_mask(raw: np.ndarray) -> np.ndarray | None:
    """Mask of values that are missing or of :data:`NUMPY_TIMESTAMP`'s shape; ``None`` when all of them are."""
    mask: np.ndarray | None = None
    if len(raw) >= VECTOR_FROM:
        text = _arrow_text(raw)
        if text is not None:
            import pyarrow.compute as pc

            shape = "^" + NUMPY_TIMESTAMP.pattern.removesuffix(r"\Z") + "$"
            ok = pc.or_kleene(pc.equal(text, ""), pc.match_substring_regex(text, shape))
            mask = np.asarray(pc.fill_null(ok, True).to_numpy(zero_copy_only=False), dtype=bool)
    if mask is None:
        match = NUMPY_TIMESTAMP.match
        values = raw.tolist()  # a list iterates ~3x faster than an object array
        if all(v is None or (type(v) is str and (not v or match(v) is not None)) for v in values):
            return None
        plain = (v is None or (type(v) is str and (not v or match(v) is not None)) for v in values)
        mask = np.fromiter(plain, dtype=bool, count=len(raw))
    return None if mask.all() else mask


def _timestamps_of_text(text: np.ndarray, tz: str) -> np.ndarray:
    """Stripped text (``None`` where missing) → ``datetime64[ns]`` through pandas, NaT where unreadable."""
    out = np.full(len(text), np.datetime64("NaT"), dtype="datetime64[ns]")
    naive: dict[int, str] = {}
    zoned: dict[int, str] = {}
    for i, value in enumerate(text):
        if value is None:
            continue
        zone = _ZONE.search(value)
        body = value[: zone.start()] if zone else value
        # A full calendar date must lead: pandas would otherwise read "now", "2017" or "20170105" as dates.
        date = FULL_DATE.match(body)
        if date and _LOCAL_TIME.fullmatch(body, date.end()):
            (zoned if zone else naive)[i] = value
    if naive:
        rows = np.fromiter(naive, dtype=np.int64, count=len(naive))
        series = pd.Series(list(naive.values()), dtype=object)
        parsed = pd.to_datetime(series, format=SOCRATA_TIMESTAMP_FORMAT, errors="coerce")
        for spelling in (EXPORT_TIMESTAMP_FORMAT, "mixed"):  # exact formats first: "mixed" is per value
            retry = parsed.isna().to_numpy()
            if retry.any():
                parsed[retry] = pd.to_datetime(series[retry], format=spelling, errors="coerce")
        out[rows] = parsed.to_numpy(dtype="datetime64[ns]")
    if zoned:
        rows = np.fromiter(zoned, dtype=np.int64, count=len(zoned))
        aware = pd.to_datetime(
            pd.Series(list(zoned.values()), dtype=object), format="mixed", errors="coerce", utc=True
        )
        out[rows] = aware.dt.tz_convert(tz).dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    return out


def parse_bools(values: Any) -> Parsed:
    """Read booleans: real booleans, ``true/false/t/f/1/0`` in any case, and the integers 0 and 1.

    Args:
        values: Raw values.

    Returns:
        A pandas ``BooleanArray`` (NA where missing or bad) and the mask of bad values.
    """
    if isinstance(values, np.ndarray) and values.dtype == bool:
        none = np.zeros(len(values), dtype=bool)
        return Parsed(pd.arrays.BooleanArray(values.copy(), none), none.copy())
    dtype = getattr(values, "dtype", None)
    if dtype is not None and pd.api.types.is_bool_dtype(dtype):
        parsed = pd.array(values, dtype="boolean")
        return Parsed(parsed, np.zeros(len(parsed), dtype=bool))
    raw = _objects(values)
    if set(map(type, raw)) <= _BOOL_TYPES:
        data = raw.astype(bool)
        return Parsed(
            pd.arrays.BooleanArray(data, np.zeros(len(raw), dtype=bool)), np.zeros(len(raw), dtype=bool)
        )
    read, bad = _read_each(raw, _read_bool)
    missing = pd.isna(read)
    data = np.zeros(len(raw), dtype=bool)
    data[~missing] = read[~missing].astype(bool)
    return Parsed(pd.arrays.BooleanArray(data, missing), bad)


def parse_codes(values: Any, pad: int = 0, pattern: str = "") -> Parsed:
    """Read codes: upper-cased text, zero-padded to ``pad`` (``"486"`` -> ``"0486"``; ``24.0`` -> ``"24"``).

    Args:
        values: Text or integers (integral floats, as a float column holds integers, are read as integers).
        pad: Width to zero-pad to; 0 leaves the width alone.
        pattern: Shape of a readable code after padding (full match); empty accepts any text.

    Returns:
        An ``object`` array of ``str`` (``None`` where missing or bad) and the mask of bad values.
    """
    return Parsed(*_read_each(_objects(values), lambda v: _read_code(v, pad, pattern)))


def parse_numbers(values: Any, *, integral: bool = False) -> Parsed:
    """Read finite numbers from numbers or text; ``nan`` text is missing, booleans, ``inf`` and ``1_000`` are bad.

    Args:
        values: Raw values.
        integral: Whether a number must be a whole number (``2.5`` is bad).

    Returns:
        ``float64`` values (NaN where missing or bad) and the mask of bad values.
    """
    dtype = getattr(values, "dtype", None)
    bad: np.ndarray | None = None
    if isinstance(values, np.ndarray) and values.dtype.kind in "iuf":  # typed already (the server's columns)
        arr = values.astype(np.float64)
        if len(arr) < DISTINCT_FROM:  # one request: Python's checks beat numpy's reductions on a few values
            check = _not_whole if integral else math.isinf
            if not any(map(check, arr.tolist())):
                return Parsed(arr, np.zeros(len(arr), dtype=bool))
    elif dtype is not None and pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
        arr = pd.array(values).to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        arr, bad = _numbers_of_objects(_objects(values))
    unreadable = np.isinf(arr)
    if integral:
        unreadable |= (arr != np.trunc(arr)) & ~np.isnan(arr)
    if bad is not None:
        unreadable |= bad
    if unreadable.any():
        arr = np.where(unreadable, np.nan, arr)
    return Parsed(arr, unreadable)


def _numbers_of_objects(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    types = set(map(type, raw))
    if types <= _NUMBER_TYPES:
        try:
            return np.array(raw, dtype=np.float64), np.zeros(len(raw), dtype=bool)  # None becomes NaN
        except OverflowError:  # an integer beyond float64
            pass
    elif types <= _TEXT_TYPES:
        # Fast path for clean text: float() strips blanks and reads "nan" as NaN, as the rules below do.
        filled = raw.copy()
        filled[pd.isna(filled) | (filled == "")] = "nan"
        try:
            arr = filled.astype(np.float64)
        except (ValueError, TypeError, OverflowError):
            pass
        else:
            if "_" not in "".join(filled):  # float() reads "1_000"; a raw value never means that
                return arr, np.zeros(len(raw), dtype=bool)
    read, bad = _read_each(raw, _read_number)
    return np.where(pd.isna(read), np.nan, read).astype(np.float64), bad


def parse_text(values: Any, *, upper: bool = False) -> Parsed:
    """Read free text: stripped, blank = missing; never bad.

    Args:
        values: Raw values (booleans read as ``true``/``false``, other non-text values as their ``str``).
        upper: Upper-case as well (the model's categories).

    Returns:
        An ``object`` array of ``str`` (``None`` where missing) and an all-false mask.
    """
    raw = _objects(values)
    # Many distinct texts (case numbers, blocks) are trimmed by Arrow; upper-casing stays Python's (str.upper
    # gives "SS" for "ß", Arrow's utf8_upper "ẞ"), once per distinct value: the model's categories are few.
    if len(raw) >= VECTOR_FROM and not upper:
        text = _arrow_text(raw)
        if text is not None:
            import pyarrow.compute as pc

            text = pc.utf8_trim(text, characters=_WHITESPACE)
            text = pc.if_else(pc.equal(text, ""), None, text)
            out = np.asarray(text.to_numpy(zero_copy_only=False), dtype=object)
            return Parsed(out, np.zeros(len(raw), dtype=bool))
    clean = _clean_upper if upper else _clean_text
    return Parsed(*_read_each(raw, lambda v: clean(_as_text(v))))


def labels(records: Records, *, strict: bool = True) -> Parsed:
    """The label (:data:`LABEL`, ``arrest``) of each record, read as a ``bool`` field.

    Args:
        records: Records with the label field.
        strict: Raise when a label is unknown (training and evaluation need every label).

    Returns:
        ``int64`` 0/1 values (0 where unknown) and the mask of unknown labels (missing or unreadable).

    Raises:
        FieldError: When the records have no label field, or ``strict`` and some label is unknown.
    """
    if LABEL not in records:
        raise FieldError(LABEL, "is missing: the records carry no label")
    parsed = parse_bools(records[LABEL])
    unknown = np.asarray(pd.isna(parsed.values), dtype=bool)
    if strict:
        require_values(LABEL, records[LABEL], unknown, "expected true or false")
    return Parsed(parsed.values.to_numpy(dtype=np.int64, na_value=0), unknown)


def require_values(field: str, values: Any, unknown: np.ndarray, expected: str) -> None:
    """Raise :class:`FieldError` naming ``field``, how many values are unknown and the first of them.

    Args:
        field: The field's name.
        values: Its raw values (for the message).
        unknown: Mask of the values that are missing or unreadable.
        expected: What a value should look like (the end of the message).

    Raises:
        FieldError: When any value is unknown.
    """
    rows = np.flatnonzero(unknown)
    if len(rows):
        shown = ", ".join(repr(v) for v in _objects(values)[rows[:3]])
        raise FieldError(
            field,
            f"is missing or unreadable in {len(rows)} of {len(unknown)} record(s) ({shown}); {expected}",
        )


# -- per-value readers (cached: one request's values are nearly always ones seen before) ------------------------

_BOOL_TYPES = frozenset({bool, np.bool_})
_NUMBER_TYPES = frozenset({int, float, np.float64, np.float32, np.int64, np.int32, type(None)})
_TEXT_TYPES = frozenset({str, type(None)})


def _is_missing(value: object) -> bool:
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and value != value)


def _as_text(value: object) -> str:
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    return str(value)


def _read_bool(value: object) -> Any:
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, str):
        return _bool_text(value)
    if isinstance(value, int | np.integer) and value in (0, 1):
        return bool(value)
    return _BAD


@lru_cache(maxsize=256)
def _bool_text(text: str) -> Any:
    key = text.strip().lower()
    if key in TRUE_TEXT:
        return True
    if key in FALSE_TEXT:
        return False
    return _BAD if key else None


def _read_code(value: object, pad: int, pattern: str) -> Any:
    if isinstance(value, str):
        return _code_text(value, pad, pattern)
    if isinstance(value, bool | np.bool_):
        return _BAD
    if isinstance(value, int | np.integer):
        return _code_text(str(int(value)), pad, pattern)
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return _code_text(str(int(value)), pad, pattern)
    return _BAD


@lru_cache(maxsize=1 << 16)
def _code_text(text: str, pad: int, pattern: str) -> Any:
    value = text.strip().upper()
    if not value:
        return None
    match = _FLOAT_INT.fullmatch(value)  # integers that went through a float column: "24.0"
    if match:
        value = match.group(1)
    if pad:
        value = value.zfill(pad)
    if pattern and not _compiled(pattern).fullmatch(value):
        return _BAD
    return value


@lru_cache(maxsize=64)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _not_whole(number: float) -> bool:
    return number == number and not number.is_integer()  # NaN is missing, inf is no whole number


def _read_number(value: object) -> Any:
    if isinstance(value, bool | np.bool_):
        return _BAD
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if "_" in text:
            return _BAD
    elif not isinstance(value, int | float | np.integer | np.floating):
        return _BAD
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return _BAD
    return None if number != number else number


@lru_cache(maxsize=1 << 16)
def _clean_text(text: str) -> str | None:
    return text.strip() or None


@lru_cache(maxsize=1 << 16)
def _clean_upper(text: str) -> str | None:
    return text.strip().upper() or None


# -- array plumbing -----------------------------------------------------------------------------------------------

# Types whose values are equal only to values of the same type (True == 1 == 1.0 would merge in a hash table).
_NON_COLLIDING = frozenset({str, float, type(None), type(pd.NA)})
_MISSING_TYPES = frozenset({type(None), type(pd.NA)})


def _objects(values: Any) -> np.ndarray:
    """Raw values as a 1-D ``object`` array (the caller's own when it is one; missing as ``None`` otherwise)."""
    if isinstance(values, np.ndarray):
        return values if values.dtype == object else values.astype(object)
    if isinstance(values, pd.Series | pd.Index | pd.api.extensions.ExtensionArray):
        return np.asarray(values.to_numpy(dtype=object, na_value=None), dtype=object)
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


def _arrow_text(raw: np.ndarray) -> Any:
    """``raw`` as an Arrow string array when every value is text or missing, else ``None``."""
    import pyarrow as pa

    try:
        return pa.array(raw, type=pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None


def _distinct_ok(values: np.ndarray) -> bool:
    """Whether one hash table keeps ``values`` apart: one type (and missing), or only str, float and missing."""
    types = set(map(type, values))
    return types <= _NON_COLLIDING or len(types - _MISSING_TYPES) <= 1


def _read_each(raw: np.ndarray, read: Callable[[Any], Any]) -> tuple[np.ndarray, np.ndarray]:
    """``read`` of every non-missing value → ``(values, bad)``: ``None`` where missing or ``_BAD``.

    Many values are read once per distinct value (:data:`DISTINCT_FROM`), few value by value.
    """
    n = len(raw)
    if n >= DISTINCT_FROM and _distinct_ok(raw):
        codes, uniques = pd.factorize(raw, use_na_sentinel=True)
        answers = [read(u) for u in uniques]
        table = np.empty(len(answers) + 1, dtype=object)  # the last entry answers code -1 (missing)
        for i, answer in enumerate(answers):
            table[i] = None if answer is _BAD else answer
        unreadable = np.array([a is _BAD for a in answers] + [False], dtype=bool)
        return table[codes], unreadable[codes]
    answers = [None if _is_missing(v) else read(v) for v in raw.tolist()]  # a list iterates faster
    bad = np.zeros(n, dtype=bool)
    if _BAD in answers:
        bad[:] = [a is _BAD for a in answers]
        answers = [None if a is _BAD else a for a in answers]
    return np.array(answers, dtype=object), bad  # answers are scalars: a 1-D array


def map_distinct(
    values: np.ndarray, fn: Callable[[Any], Any], dtype: Any = object, missing: Any = None
) -> np.ndarray | None:
    """``fn`` of each value, computed once per distinct value (``missing`` for None/NaN/NA).

    Returns ``None`` (the caller maps value by value) below :data:`DISTINCT_FROM` values, where hashing costs
    more than it saves, and when the values mix types that compare equal across types (``True``, ``1``,
    ``1.0``), which one hash table would merge.

    Args:
        values: One-dimensional ``object`` array.
        fn: The per-value function (applied to non-missing values only).
        dtype: Result dtype.
        missing: Result for missing values.

    Returns:
        The mapped array, or ``None``.
    """
    if len(values) < DISTINCT_FROM or not _distinct_ok(values):
        return None
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    mapped = np.array([*(fn(u) for u in uniques), missing], dtype=dtype)
    return mapped[codes]  # code -1 (missing) takes the last entry


def arrest_based_mask(primary_type: Any) -> np.ndarray:
    """Return a boolean mask of records whose crime type is recorded only upon arrest."""
    types = parse_text(primary_type, upper=True).values
    return np.fromiter((t in ARREST_BASED_TYPES for t in types), dtype=bool, count=len(types))
