"""The data contract: raw crime records in, canonical valid records and a quarantine with reasons out.

Raw records arrive as landed by ingest (every value text, missing = empty or ``<NA>``); typed frames (for
example the ``valid`` frame of an earlier run) are accepted too and give the same result. Each field is read by
the parser of its kind in :mod:`chicago_arrest.core.parsing` (:func:`~chicago_arrest.core.parsing.parse_field`),
the same one ingest, the model and the server use: what it cannot read is quarantined as ``bad_<kind>:<field>``.
Every input row ends up in exactly one of the two outputs, and the split is asserted in code:

* ``valid``: the records that pass every rule, in canonical dtypes (``id`` ``Int64``, timestamps
  ``datetime64[ns]`` Chicago local time, codes zero-padded ``string``, flags ``boolean``, ``ward`` /
  ``community_area`` / ``year`` ``Int64``, coordinates ``float64``, other text ``string``).
* ``quarantine``: the offending records with their original values and a ``reason`` column that lists every
  rule the record breaks, ``;``-joined, each machine-readable (``rule`` or ``rule:field``):

  ==========================  ==========================================================================
  ``missing_column:<field>``  a required column is absent from the whole frame (every row carries it)
  ``null:<field>``            a non-nullable field is empty
  ``bad_number:<field>``      not a finite number (``inf``, ``1_000``, text, a boolean); for integer fields
                              also a non-integral number (``nan`` text is empty, not bad)
  ``bad_date:<field>``        not a timestamp that starts with a full calendar date (``now``, ``today``,
                              ``2017``, ``20170105``, ``2017-13-01``, ``02/30/2017 10:00:00 AM``)
  ``bad_bool:<field>``        not one of true/false, t/f, 1/0 (any case), the integers 0/1 or a boolean
  ``bad_code:<field>``        a code of the wrong shape after zero-padding (the field's ``pattern``)
  ``future_date``             ``date`` later than ``now``
  ``partial_coordinates``     only one of latitude/longitude (or of x/y) is given
  ``outside_chicago``         a coordinate pair outside Chicago's bounding box
  ``duplicate_id``            another record with the same ``id`` was kept
  ==========================  ==========================================================================

Records without any coordinates are valid (the model flags them) and are counted. Entry point:
:func:`validate_records`.

One rule looks at the whole input rather than at a record: the hour of day (:func:`check_hours`). A set of
records whose ``date`` has no afternoon or evening hour (13:00-23:59; 55-58 % of every month of the Socrata data
2015-2017), or only one hour, cannot be Chicago's crimes: the times were read on a 12-hour clock without AM/PM
(the public BigQuery table's loader, :data:`chicago_arrest.data.bigquery.LOADER`) or carry no time of day. No
record is wrong on its own, so nothing is quarantined: :class:`ImplausibleHoursError` stops the run, since the
model's hour feature would otherwise be silently wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from chicago_arrest.core.errors import ArrestError
from chicago_arrest.core.names import CHICAGO_TZ
from chicago_arrest.core.parsing import parse_field
from chicago_arrest.core.schema import (
    CHICAGO_LAT,
    CHICAGO_LON,
    CHICAGO_X,
    CHICAGO_Y,
    DATE,
    FIELD_BY_NAME,
    FIELDS,
    ID,
    RAW_COLUMNS,
    FieldSpec,
)

#: Nullable fields the model does not read: absent columns are added as nulls, nothing is quarantined.
OPTIONAL_COLUMNS: tuple[str, ...] = tuple(f.name for f in FIELDS if f.nullable and not f.model_input)
#: Columns a frame must have (the contract's non-nullable fields and every model input).
REQUIRED_COLUMNS: tuple[str, ...] = tuple(c for c in RAW_COLUMNS if c not in OPTIONAL_COLUMNS)
REASON = "reason"
REASON_SEPARATOR = ";"
FUTURE_DATE = "future_date"
PARTIAL_COORDINATES = "partial_coordinates"
OUTSIDE_CHICAGO = "outside_chicago"
DUPLICATE_ID = "duplicate_id"
#: The totals in :attr:`ValidationResult.counts`; every other key is a reason.
TOTALS: tuple[str, ...] = ("rows_in", "valid", "quarantined", "rows_without_coordinates")


#: The hour rule (:func:`check_hours`) judges a set of at least this many dated records (fewer: no verdict).
HOUR_RULE_MIN_RECORDS = 500
#: Afternoon and evening: 13:00-23:59. Their share of the records in each month of the Socrata data 2015-2017
#: is 55-58 %; on a 12-hour clock read without AM/PM they fold onto 01-11 and 12 and the share is 0.
AFTERNOON_HOURS = range(13, 24)
#: The rule fails below this share of afternoon and evening records (five times below any month seen).
HOUR_RULE_MIN_AFTERNOON = 0.10


class ContractError(AssertionError):
    """The contract's own bookkeeping is inconsistent (rows lost or duplicated): a bug, never bad data."""


class ImplausibleHoursError(ArrestError):
    """The records' hours of day cannot be Chicago's crimes (a 12-hour clock without AM/PM, or no time)."""


@dataclass
class ValidationResult:
    """Outcome of :func:`validate_records`.

    Attributes:
        valid: Records that pass every rule, canonical dtypes, the input's index; the raw columns in
            :data:`chicago_arrest.core.schema.RAW_COLUMNS` order, then any extra input columns unchanged.
        quarantine: The offending records with their original columns and values (the input's index) plus
            ``reason``: every rule broken, ``;``-joined (for example ``bad_date:date;outside_chicago``).
        counts: Flat ``{name: int}``: ``rows_in``, ``valid``, ``quarantined``, ``rows_without_coordinates``
            (valid records with no usable coordinate pair), then one entry per rule that some record broke,
            keyed by the reason (``"bad_date:date": 3``); a record breaking two rules counts for both.
    """

    valid: pd.DataFrame
    quarantine: pd.DataFrame
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def reason_counts(self) -> dict[str, int]:
        """Records per broken rule (only the rules some record broke), in rule order."""
        return {k: v for k, v in self.counts.items() if k not in TOTALS}

    @property
    def missing_columns(self) -> list[str]:
        """Required columns absent from the input (each quarantined every row)."""
        prefix = "missing_column:"
        return [k.removeprefix(prefix) for k in self.counts if k.startswith(prefix)]

    def metrics(self) -> dict[str, int]:
        """Return the counts under portable metric names (no ``:``, which MLflow rejects on Windows).

        ``null:date`` becomes ``reason_null_date``.

        Returns:
            ``rows_in``, ``valid``, ``quarantined``, ``rows_without_coordinates`` and ``reason_<rule>``.
        """
        out = {k: self.counts[k] for k in TOTALS}
        out.update({"reason_" + k.replace(":", "_"): v for k, v in self.reason_counts.items()})
        return out

    def summary(self) -> str:
        """Return a one-line human summary, for logs and pipeline UIs.

        Returns:
            For example ``"50000 rows: 49990 valid, 10 quarantined (bad_date:date=7, duplicate_id=3);
            552 valid rows without coordinates"``.
        """
        c = self.counts
        text = f"{c['rows_in']} rows: {c['valid']} valid, {c['quarantined']} quarantined"
        if reasons := self.reason_counts:
            text += " (" + ", ".join(f"{k}={v}" for k, v in reasons.items()) + ")"
        return text + f"; {c['rows_without_coordinates']} valid rows without coordinates"

    def __str__(self) -> str:
        return self.summary()


def _chicago_now() -> pd.Timestamp:
    return pd.Timestamp.now(tz=CHICAGO_TZ).tz_localize(None)


def _naive_chicago(ts: pd.Timestamp) -> pd.Timestamp:
    return ts.tz_convert(CHICAGO_TZ).tz_localize(None) if ts.tzinfo is not None else ts


@dataclass
class _Parsed:
    value: pd.Series  # canonical dtype; null where missing or bad
    given: np.ndarray  # a value is there (possibly bad)
    bad: np.ndarray  # given but breaks the field's type


def _parse_field(spec: FieldSpec, values: pd.Series) -> _Parsed:
    """Read one raw column with its field's parser (:func:`~chicago_arrest.core.parsing.parse_field`)."""
    parsed = parse_field(spec, values)
    index = values.index
    value: pd.Series
    if spec.kind == "int":
        value = pd.Series(parsed.values, index=index).astype("Int64")
    elif spec.kind in ("code", "string"):
        value = pd.Series(parsed.values, index=index, dtype=pd.StringDtype())
    else:
        value = pd.Series(parsed.values, index=index)
    return _Parsed(value, parsed.given, parsed.bad)


def _duplicates(ids: pd.Series, otherwise_ok: np.ndarray, updated_on: pd.Series) -> np.ndarray:
    """Mask of the records to drop as duplicates: all but one per repeated ``id``.

    The one kept prefers a record that passes every other rule, then the latest ``updated_on``, then the
    last occurrence.
    """
    id_values = ids.to_numpy(dtype=float, na_value=np.nan)
    repeated = (ids.notna() & ids.duplicated(keep=False)).to_numpy(dtype=bool)
    drop = np.zeros(len(ids), dtype=bool)
    if not repeated.any():
        return drop
    pos = np.flatnonzero(repeated)
    updated = updated_on.to_numpy(dtype="datetime64[ns]")[pos].view("int64")  # NaT sorts first
    order = np.lexsort((pos, updated, otherwise_ok[pos], id_values[pos]))
    sorted_ids = id_values[pos][order]
    is_last = np.append(sorted_ids[1:] != sorted_ids[:-1], True)
    drop[pos[order[~is_last]]] = True
    return drop


def _join_reasons(rules: list[tuple[str, np.ndarray]], rows: np.ndarray) -> np.ndarray:
    """``;``-joined reasons of the records at positions ``rows``."""
    out = np.full(len(rows), "", dtype=object)
    for name, mask in rules:
        hit = mask[rows]
        if hit.any():
            out[hit] = out[hit] + (name + REASON_SEPARATOR)
    return np.array([r[: -len(REASON_SEPARATOR)] for r in out], dtype=object)


def _coordinate_pair(
    a: _Parsed, b: _Parsed, box_a: tuple[float, float], box_b: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(complete pair, complete pair outside the box, only one of the two given)`` masks."""
    va = a.value.to_numpy(dtype=float, na_value=np.nan)
    vb = b.value.to_numpy(dtype=float, na_value=np.nan)
    both = ~(np.isnan(va) | np.isnan(vb))
    with np.errstate(invalid="ignore"):
        inside = (va >= box_a[0]) & (va <= box_a[1]) & (vb >= box_b[0]) & (vb <= box_b[1])
    return both, both & ~inside, a.given ^ b.given


def _check_invariants(rows_in: int, valid: pd.DataFrame, quarantine: pd.DataFrame) -> None:
    """Raise :class:`ContractError` unless every input row is in exactly one output, as it should be."""
    if len(valid) + len(quarantine) != rows_in:
        raise ContractError(f"{rows_in} rows in but {len(valid)} valid + {len(quarantine)} quarantined")
    reasons = quarantine[REASON] if REASON in quarantine.columns else pd.Series(pd.NA, index=quarantine.index)
    if (reasons.isna() | (reasons == "")).any():
        raise ContractError("a quarantined record has no reason")
    if ID in valid.columns and (valid[ID].isna().any() or valid[ID].duplicated().any()):
        raise ContractError("valid records with a null or repeated id")


def hour_counts(dates: pd.Series) -> dict[int, int]:
    """Records per hour of day (0-23) among the dated ones, every hour listed."""
    hours = pd.Series(dates).dropna().dt.hour.to_numpy(dtype=int)
    counts = np.bincount(hours, minlength=24)
    return {h: int(counts[h]) for h in range(24)}


def check_hours(dates: pd.Series, *, min_records: int = HOUR_RULE_MIN_RECORDS) -> dict[int, int]:
    """The hour-of-day rule: fail loudly when the hours of a set of records are impossible for Chicago's crimes.

    Impossible: fewer than :data:`HOUR_RULE_MIN_AFTERNOON` of the records between 13:00 and 23:59 (what a
    12-hour clock read without AM/PM gives: every hour 1..12, midnight at 12), or a single hour for every record
    (no time of day). Fewer than ``min_records`` dated records get no verdict.

    Args:
        dates: Parsed ``date`` values (naive Chicago time; ``NaT`` ignored).
        min_records: Smallest number of dated records judged.

    Returns:
        Records per hour (see :func:`hour_counts`).

    Raises:
        ImplausibleHoursError: Naming the share seen, the hours present and what to check.
    """
    counts = hour_counts(dates)
    n = sum(counts.values())
    if n < min_records:
        return counts
    present = [h for h, c in counts.items() if c]
    afternoon = sum(counts[h] for h in AFTERNOON_HOURS) / n
    if len(present) == 1:
        raise ImplausibleHoursError(
            f"date: all {n} dated records are at hour {present[0]:02d}: the timestamps carry no time of day, "
            "and the model's hour feature would be constant; check how the source writes its timestamps"
        )
    if afternoon < HOUR_RULE_MIN_AFTERNOON:
        raise ImplausibleHoursError(
            f"date: only {afternoon:.1%} of {n} dated records are between 13:00 and 23:59 (Chicago's crimes: "
            f"55-58 % in every month of 2015-2017; hours present: {', '.join(f'{h:02d}' for h in present)}): the "
            "times look read on a 12-hour clock without AM/PM, as the loader of "
            "bigquery-public-data.chicago_crime.crime does (strptime '%H ... %p'); the hour cannot be recovered "
            "from such data: train from Socrata instead (SOURCE=socrata); docs/vertex.md has the query to check"
        )
    return counts


def validate_records(
    frame: pd.DataFrame, *, now: pd.Timestamp | None = None, hour_rule: bool = True
) -> ValidationResult:
    """Apply the data contract to raw crime records.

    Rules (reasons in the module docstring): every column of :data:`REQUIRED_COLUMNS` must exist (an absent
    one quarantines every row; absent :data:`OPTIONAL_COLUMNS` are added as nulls); every value must parse
    as its :data:`chicago_arrest.core.schema.FIELDS` kind; non-nullable fields must be given; ``date`` must not be
    after ``now``; coordinates, when given, come in complete pairs inside Chicago's bounding box (records
    with none are valid); ``id`` is unique (one record kept per id, see below).

    Of records sharing an ``id`` the one kept is the one that passes every other rule, then the one with the
    latest ``updated_on``, then the last occurrence; the others are quarantined with ``duplicate_id``.

    Args:
        frame: Raw records with Socrata field names, all text (as landed) or already typed. Extra columns
            are carried along unchanged; an input column named ``reason`` (a stale quarantine reason) is
            dropped.
        now: Reference time for ``future_date``, Chicago local (zone-aware values are converted). Default:
            the current time in America/Chicago.
        hour_rule: Apply :func:`check_hours` to the valid records' dates (off for sets that are not a sample
            of Chicago's crimes, such as the requests a model server received).

    Returns:
        The valid records, the quarantined records with reasons, and counts.

    Raises:
        ContractError: If the bookkeeping ever loses or duplicates a record (a bug, not a data problem).
        ImplausibleHoursError: When the hour rule fails (:func:`check_hours`).
    """
    n = len(frame)
    now_ts = _chicago_now() if now is None else _naive_chicago(pd.Timestamp(now))
    index = frame.index
    data = frame.reset_index(drop=True)
    missing = [c for c in REQUIRED_COLUMNS if c not in data.columns]
    missing_set = set(missing)

    rules: list[tuple[str, np.ndarray]] = []
    everyone = np.ones(n, dtype=bool)
    rules.extend((f"missing_column:{c}", everyone) for c in missing)

    parsed: dict[str, _Parsed] = {}
    for spec in FIELDS:
        if spec.name in data.columns:
            parsed[spec.name] = _parse_field(spec, data[spec.name])
            p = parsed[spec.name]
            if not spec.nullable:
                rules.append((f"null:{spec.name}", ~p.given))
            if p.bad.any():
                kind = {"int": "number", "float": "number", "datetime": "date"}.get(spec.kind, spec.kind)
                rules.append((f"bad_{kind}:{spec.name}", p.bad))
        else:
            empty = pd.Series(pd.NA, index=data.index, dtype="object")
            parsed[spec.name] = _parse_field(spec, empty)

    date = parsed["date"].value
    rules.append((FUTURE_DATE, (date > now_ts).to_numpy(dtype=bool, na_value=False)))

    ll_ok, ll_out, ll_partial = _coordinate_pair(
        parsed["latitude"], parsed["longitude"], CHICAGO_LAT, CHICAGO_LON
    )
    xy_ok, xy_out, xy_partial = _coordinate_pair(
        parsed["x_coordinate"], parsed["y_coordinate"], CHICAGO_X, CHICAGO_Y
    )
    # A pair with an absent column is reported once as missing_column, not as partial on every row.
    if missing_set & {"latitude", "longitude"}:
        ll_partial = np.zeros(n, dtype=bool)
    if missing_set & {"x_coordinate", "y_coordinate"}:
        xy_partial = np.zeros(n, dtype=bool)
    rules.append((PARTIAL_COORDINATES, ll_partial | xy_partial))
    rules.append((OUTSIDE_CHICAGO, ll_out | xy_out))

    failing = np.zeros(n, dtype=bool)
    for _, mask in rules:
        failing |= mask
    if ID in data.columns:
        rules.append((DUPLICATE_ID, _duplicates(parsed[ID].value, ~failing, parsed["updated_on"].value)))
        failing |= rules[-1][1]

    rules = [(name, mask) for name, mask in rules if mask.any()]
    bad_rows = np.flatnonzero(failing)
    good_rows = np.flatnonzero(~failing)

    extras = [c for c in data.columns if c not in FIELD_BY_NAME and c != REASON]
    canonical = pd.DataFrame({name: parsed[name].value for name in RAW_COLUMNS}, index=data.index)
    if extras:
        canonical = pd.concat([canonical, data[extras]], axis=1)
    valid = canonical.iloc[good_rows]
    valid.index = index[good_rows]

    quarantine = data.drop(columns=[REASON], errors="ignore").iloc[bad_rows].copy()
    quarantine.index = index[bad_rows]
    quarantine[REASON] = pd.Series(_join_reasons(rules, bad_rows), index=quarantine.index, dtype="string")

    counts: dict[str, int] = {
        "rows_in": n,
        "valid": len(valid),
        "quarantined": len(quarantine),
        "rows_without_coordinates": int((~(ll_ok | xy_ok))[good_rows].sum()),
    }
    counts.update({name: int(mask.sum()) for name, mask in rules})
    _check_invariants(n, valid, quarantine)
    if hour_rule and DATE in valid.columns:
        check_hours(valid[DATE])
    return ValidationResult(valid=valid, quarantine=quarantine, counts=counts)
