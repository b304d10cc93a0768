"""The parsers' fast paths give what the value-by-value rules give, and are safe in threads."""

from __future__ import annotations

import datetime as dt
import sys
import threading
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chicago_arrest.core import parsing
from chicago_arrest.core.parsing import DISTINCT_FROM, map_distinct, parse_field, parse_timestamps
from chicago_arrest.core.schema import FIELD_BY_NAME
from chicago_arrest.model.inputs import category_array

#: One field of each kind the model reads as a category (``ward`` is ``int``, ``beat`` a padded code).
CATEGORY_FIELDS = {
    kind: FIELD_BY_NAME[name]
    for kind, name in (("code", "beat"), ("int", "ward"), ("bool", "domestic"), ("string", "description"))
}


def parse_timestamp(values: pd.Series) -> pd.Series:
    return pd.Series(parse_timestamps(values).values, index=values.index)


VALUES = st.one_of(
    st.none(),
    st.just(float("nan")),
    st.booleans(),
    st.integers(-3, 30),
    st.floats(-3, 30, allow_nan=False).map(lambda f: round(f, 1)),
    st.sampled_from(["", " 0486 ", "24.0", "true", "F", "theft", "THEFT", "1", "1.0", "011"]),
    st.text(max_size=4),
)


def _value_by_value(values: list[object], kind: str) -> tuple[list[object], list[bool], list[object]]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(parsing, "DISTINCT_FROM", 10**9)
        patch.setattr(parsing, "VECTOR_FROM", 10**9)
        return _read(values, kind)


def _read(values: list[object], kind: str) -> tuple[list[object], list[bool], list[object]]:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    spec = CATEGORY_FIELDS[kind]
    parsed = parse_field(spec, array)
    return (
        list(pd.Series(parsed.values, dtype=object).fillna("<missing>")),
        list(parsed.bad),
        list(category_array(array, spec)),
    )


@settings(max_examples=150, deadline=None)
@given(
    values=st.lists(VALUES, min_size=DISTINCT_FROM, max_size=3 * DISTINCT_FROM),
    kind=st.sampled_from(sorted(CATEGORY_FIELDS)),
)
def test_distinct_values_path_equals_the_value_by_value_path(values: list[object], kind: str) -> None:
    assert _read(values, kind) == _value_by_value(values, kind)


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(
        st.one_of(st.none(), st.text(max_size=6), st.sampled_from(["", " a ", "b\x1f", "\u3000c", "ß"])),
        min_size=1,
        max_size=12,
    )
)
def test_arrow_text_path_equals_the_value_by_value_path(values: list[object]) -> None:
    many = values * (parsing.VECTOR_FROM // len(values) + 1)
    for upper in (False, True):
        fast = parsing.parse_text(many, upper=upper).values[: len(values)]
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(parsing, "VECTOR_FROM", 10**9)
            patch.setattr(parsing, "DISTINCT_FROM", 10**9)
            slow = parsing.parse_text(values, upper=upper).values
        assert list(fast) == list(slow)


@settings(max_examples=100, deadline=None)
@given(
    values=st.lists(
        st.one_of(st.none(), st.sampled_from(["a", "b", "c", "MISSING"]), st.booleans()),
        min_size=DISTINCT_FROM,
    )
)
def test_map_distinct_maps_each_value_or_declines(values: list[object]) -> None:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    table = {"a": 1.0, "b": 2.0, True: 5.0}
    mapped = map_distinct(array, lambda v: table.get(v, -1.0), dtype=float, missing=-9.0)
    kinds = {type(v) for v in values} - {type(None)}
    if len(kinds) > 1 and bool in kinds:
        assert mapped is None  # str and bool mixed: declined
        return
    assert mapped is not None
    assert list(mapped) == [-9.0 if v is None else table.get(v, -1.0) for v in values]


def test_map_distinct_declines_few_values_and_colliding_types() -> None:
    assert map_distinct(np.array(["a"] * (DISTINCT_FROM - 1), dtype=object), str) is None
    mixed = np.array([True, 1, 1.0] * DISTINCT_FROM, dtype=object)  # equal across types: one hash bucket
    assert map_distinct(mixed, str) is None
    assert list(category_array(mixed, FIELD_BY_NAME["description"]))[:3] == ["TRUE", "1", "1.0"]


def test_socrata_timestamps_parse_without_touching_the_warning_filters() -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("warning filters changed: not thread-safe")

    values = pd.Series(["2017-03-01T13:05:00.000", "2017-03-01 13:05", "2017-03-01", None, ""], dtype=object)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(warnings, "catch_warnings", forbidden)
        patch.setattr(warnings, "simplefilter", forbidden)
        out = parse_timestamp(values)
    assert [str(v) for v in out[:3]] == ["2017-03-01 13:05:00", "2017-03-01 13:05:00", "2017-03-01 00:00:00"]
    assert out[3:].isna().all()


def test_timestamps_numpy_would_convert_with_a_warning_go_to_pandas() -> None:
    values = pd.Series(
        ["2017-03-01T13:05:00Z", "2017-03-01T13:05:00+01:00", "2017-03-01T13:05:00 ", "2017-13-01", "now"],
        dtype=object,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's "no explicit representation of timezones" would raise
        out = parse_timestamp(values)
    assert [str(v) for v in out[:3]] == ["2017-03-01 07:05:00", "2017-03-01 06:05:00", "2017-03-01 13:05:00"]
    assert out[3:].isna().all()


def test_timestamps_parse_while_other_threads_warn() -> None:
    """``warnings.catch_warnings`` is process-wide: an "error" filter set by one thread turned another thread's
    harmless warning into an exception (HTTP 500s under load). Parsing must not do that."""
    stop = threading.Event()
    failures: list[BaseException] = []

    def warn() -> None:
        while not stop.is_set():
            try:
                warnings.warn("harmless", UserWarning, stacklevel=1)
            except BaseException as exc:  # pragma: no cover - the failure this test looks for
                failures.append(exc)
                return

    values = pd.Series(["2017-03-01T13:05:00.000"] * 3, dtype=object)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often: the old code failed within 3,000 parses this way
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        thread = threading.Thread(target=warn)
        thread.start()
        try:
            for _ in range(3000):
                parse_timestamp(values)
        finally:
            stop.set()
            thread.join()
            sys.setswitchinterval(interval)
    assert not failures


TIMESTAMPS = st.one_of(
    st.none(),
    st.just(""),
    st.datetimes(min_value=dt.datetime(1990, 1, 1), max_value=dt.datetime(2030, 1, 1)).map(
        lambda d: d.isoformat(timespec="milliseconds")
    ),
    st.sampled_from(["2017-03-01 13:05", "2017-03-01", "now", "2017", "20170105", "03/01/2017 01:05:00 PM"]),
    st.sampled_from(["9999-12-31T00:00:00", "1600-01-01", "2017-02-30", "2017-03-01T24:00:00", " ", "today"]),
    st.sampled_from(["2017-03-01T13:05:00Z", "2017-03-01T13:05:00-05:00", " 2017-03-01T13:05:00", "garbage"]),
)


@settings(max_examples=150, deadline=None)
@given(values=st.lists(TIMESTAMPS, min_size=1, max_size=8))
def test_timestamps_of_an_array_of_a_series_and_of_many_parse_alike(values: list[object]) -> None:
    """The value-by-value plain check (one request), the Arrow one (a year of records) and pandas agree."""
    array = np.empty(len(values), dtype=object)
    array[:] = values
    got = parse_timestamps(array)
    assert got.values.dtype == np.dtype("datetime64[ns]")
    series = parse_timestamps(pd.Series(array, dtype="string"))
    np.testing.assert_array_equal(got.values, series.values)
    np.testing.assert_array_equal(got.bad, series.bad)
    many = parse_timestamps(np.concatenate([array] * (parsing.VECTOR_FROM // len(array) + 1)))
    np.testing.assert_array_equal(many.values[: len(array)], got.values)
    np.testing.assert_array_equal(many.bad[: len(array)], got.bad)
