"""One parser per field kind (chicago_arrest.core.parsing): its rules, and that every reader applies the same ones."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from arrest_server.validation import parse_v1
from kserve.errors import InvalidInput

from chicago_arrest.core.parsing import (
    FieldError,
    labels,
    parse_bools,
    parse_codes,
    parse_numbers,
    parse_text,
    parse_timestamps,
)
from chicago_arrest.core.schema import FIELD_BY_NAME
from chicago_arrest.data.validate import validate_records
from chicago_arrest.model.inputs import model_input_arrays

MISSING = object()
BAD = object()


def _read(parsed: Any) -> list[object]:
    """Each value as read: the value, MISSING or BAD."""
    values = list(pd.Series(np.asarray(parsed.values, dtype=object), dtype=object))
    return [BAD if b else (MISSING if pd.isna(v) else v) for v, b in zip(values, parsed.bad, strict=True)]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (True, True),
        ("true", True),
        (" F ", False),
        ("1", True),
        (0, False),
        (1, True),
        ("", MISSING),
        (None, MISSING),
        (float("nan"), MISSING),
        ("yes", BAD),
        (2, BAD),
        (1.0, BAD),
    ],
)
def test_bools(raw: object, expected: object) -> None:
    assert _read(parse_bools([raw])) == [expected]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0486", "0486"),
        (" 486 ", "0486"),
        (486, "0486"),
        ("486.0", "0486"),
        (486.0, "0486"),
        ("051a", "051A"),
        ("", MISSING),
        (None, MISSING),
        ("08200", BAD),
        ("48-6", BAD),
        (True, BAD),
        (48.6, BAD),
    ],
)
def test_codes_take_their_fields_shape(raw: object, expected: object) -> None:
    spec = FIELD_BY_NAME["iucr"]
    assert _read(parse_codes([raw], spec.pad, spec.pattern)) == [expected]


@pytest.mark.parametrize(
    ("raw", "integral", "expected"),
    [
        ("41.8", False, 41.8),
        (" 7 ", True, 7.0),
        (7, True, 7.0),
        ("7.0", True, 7.0),
        ("1e1", True, 10.0),
        ("", False, MISSING),
        ("  ", False, MISSING),
        ("nan", False, MISSING),
        (None, False, MISSING),
        ("2.5", True, BAD),
        ("inf", False, BAD),
        (float("-inf"), False, BAD),
        ("1_000", False, BAD),
        ("north", False, BAD),
        (True, False, BAD),
        (10**400, False, BAD),
    ],
)
def test_numbers(raw: object, integral: bool, expected: object) -> None:
    assert _read(parse_numbers([raw], integral=integral)) == [expected]
    many = parse_numbers([raw] * 100 + ["1"], integral=integral)  # the distinct-values and fast paths
    assert _read(many)[:1] == [expected]


def test_numbers_of_typed_columns_keep_the_rules() -> None:
    assert _read(parse_numbers(pd.Series([1, None], dtype="Int64"), integral=True)) == [1.0, MISSING]
    assert _read(parse_numbers(np.array([1.5, np.inf]), integral=False)) == [1.5, BAD]
    assert _read(parse_numbers(pd.Series([True, False]))) == [BAD, BAD]


def test_text_is_stripped_and_blank_is_missing() -> None:
    assert _read(parse_text([" a b ", "", " \t", None, True])) == ["a b", MISSING, MISSING, MISSING, "true"]
    assert parse_text(["theft "], upper=True).values.tolist() == ["THEFT"]


def test_timestamps_of_typed_columns() -> None:
    zoned = pd.Series(pd.to_datetime(["2017-06-15 17:00"]).tz_localize("UTC"))
    assert parse_timestamps(zoned).values[0] == pd.Timestamp("2017-06-15 12:00")
    naive = parse_timestamps(np.array(["2017-06-15T17:00"], dtype="datetime64[ns]"))
    assert naive.values[0] == pd.Timestamp("2017-06-15 17:00")
    assert not naive.bad.any()


def test_labels_are_strict_unless_asked_not_to_be() -> None:
    records = pd.DataFrame({"arrest": ["true", "FALSE", "", "maybe", None]})
    with pytest.raises(FieldError, match=r"field 'arrest' is missing or unreadable in 3 of 5 record\(s\)"):
        labels(records)
    y, unknown = labels(records, strict=False)
    assert y.tolist() == [1, 0, 0, 0, 0]
    assert unknown.tolist() == [False, False, True, True, True]
    assert labels(records.head(2)).values.tolist() == [1, 0]
    with pytest.raises(FieldError, match="field 'arrest' is missing"):
        labels(records.drop(columns=["arrest"]))


# -- one rule, every reader -----------------------------------------------------------------------------------

VALUES: dict[str, list[object]] = {
    "iucr": ["0820", "820", "08200", "82-0", " 0820 "],
    "beat": ["0111", "111", "11.0", "A111", "01111"],
    "ward": ["7", "7.0", "7.5", "x", "1_0"],
    "latitude": ["41.8", " 41.8 ", "inf", "north", "4_1"],
    "domestic": ["true", "T", "0", "maybe", "2"],
    "date": ["2017-03-01T13:05:00.000", "03/01/2017 01:05:00 PM", "now", "2017", "2017-02-30T00:00:00"],
}


@pytest.mark.parametrize("field", sorted(VALUES))
def test_contract_server_and_model_read_a_field_alike(field: str, crimes: pd.DataFrame) -> None:
    """A value the contract quarantines as bad is a 400 at the server and a missing value to the model."""
    records = crimes.head(len(VALUES[field])).copy()
    records[field] = VALUES[field]
    result = validate_records(records, now=pd.Timestamp("2018-01-01"))
    kind = {"int": "number", "float": "number", "datetime": "date"}.get(FIELD_BY_NAME[field].kind)
    reason = f"bad_{kind or FIELD_BY_NAME[field].kind}:{field}"
    quarantined = result.quarantine["reason"].reindex(records.index).fillna("")
    contract_bad = [reason in r.split(";") for r in quarantined]
    base = {"date": "2017-03-01T13:05:00.000", "primary_type": "THEFT", "iucr": "0820"}
    server_bad = []
    for value in VALUES[field]:
        try:
            parse_v1({"instances": [{**base, field: value}]}, 10)
        except InvalidInput as exc:
            server_bad.append(f"field '{field}'" in str(exc))
        else:
            server_bad.append(False)
    model = model_input_arrays(records)[field]
    model_missing = [v is None or v != v for v in model.tolist()]  # None, NaN or NaT
    assert contract_bad == server_bad == model_missing, (contract_bad, server_bad, model_missing)
    assert any(contract_bad)
    assert not all(contract_bad)


@pytest.mark.parametrize(
    ("raw", "chicago", "utc"),
    [
        ("2017-01-01T06:30:00Z", "2017-01-01 00:30", "2017-01-01 06:30"),
        ("2017-01-01 06:30:00 UTC", "2017-01-01 00:30", "2017-01-01 06:30"),
        ("2017-01-01T06:30:00.000+0000", "2017-01-01 00:30", "2017-01-01 06:30"),
        ("2017-01-01 01:30:00-05", "2017-01-01 00:30", "2017-01-01 06:30"),
        ("01/01/2017 12:30:00 AM", "2017-01-01 00:30", "2017-01-01 00:30"),  # naive: local time as it is
        ("2017-01-01 00:30:00 CST", None, None),  # a zone name: which one? unreadable
        ("2017-01-01T00:30:00 America/Chicago", None, None),
        ("2017-01-01 now", None, None),
    ],
)
def test_zones_are_explicit_offsets_converted_to_the_local_zone(
    raw: str, chicago: str | None, utc: str | None
) -> None:
    for tz, expected in (("America/Chicago", chicago), ("UTC", utc)):
        parsed = parse_timestamps([raw], tz=tz)
        assert bool(parsed.bad[0]) is (expected is None)
        if expected is not None:
            assert parsed.values[0] == pd.Timestamp(expected)
