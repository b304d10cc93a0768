"""The formatting helpers every report uses: numbers for people, tables with short headers and a legend."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

from chicago_arrest.reports.format import (
    MISSING,
    Column,
    cells,
    count,
    fmt,
    html_table,
    interval,
    md_table,
    metric,
    number,
    rate,
    title_name,
)

#: A float printed the machine's way: 4+ integer digits without separators and any decimals (``225381.0000``),
#: or 5+ significant decimals (``0.812345``).
RAW_FLOAT = re.compile(r"(?<![\w.,])-?(\d{4,}\.\d+|\d*\.0*[1-9]\d{4,})(?!\w)")


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (225381.0, "225,381"),
        ("225381", "225,381"),
        (np.int64(1_000_000), "1,000,000"),
        (12.6, "13"),
        (0, "0"),
        (None, MISSING),
        (math.nan, MISSING),
        ("x", MISSING),
        (pd.NA, MISSING),
    ],
)
def test_count(value: object, shown: str) -> None:
    assert count(value) == shown


def test_rate_is_a_percentage() -> None:
    assert rate(0.2346) == "23.5 %"
    assert rate(1) == "100.0 %"
    assert rate(0.00049) == "0.0 %"
    assert rate(0.123456, decimals=2) == "12.35 %"
    assert rate(float("inf")) == MISSING


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (1234.5, "1,234"),
        (225381.0, "225,381"),
        (12.345, "12.3"),
        (2.0, "2"),
        (0.5, "0.5"),
        (0.012345, "0.0123"),
        (-3.14159, "-3.14"),
        (0.0, "0"),
        (1e-12, "0.000000000001"),
    ],
)
def test_number_has_three_significant_digits_and_no_exponent(value: float, shown: str) -> None:
    assert number(value) == shown


def test_metric_keeps_three_decimals_and_three_significant_digits_when_small() -> None:
    assert metric(0.81234) == "0.812"
    assert metric(0.8) == "0.800"  # a column of ROC-AUCs lines up
    assert metric(0.01234) == "0.0123"
    assert metric(0.001234) == "0.00123"
    assert metric(0.0) == "0.000"
    assert metric(None) == MISSING


def test_interval_and_fmt_dispatch() -> None:
    assert interval(0.81234, 0.8051, 0.8193) == "0.812 (0.805\N{EN DASH}0.819)"
    assert interval(0.81234, math.nan, 0.8193) == "0.812"
    assert interval(0.25, 0.2, 0.3, kind="rate") == "25.0 % (20.0 %\N{EN DASH}30.0 %)"
    assert fmt(3, "count") == "3"
    assert fmt("THEFT", "text") == "THEFT"
    assert fmt(math.nan, "text") == MISSING


def test_html_table_formats_escapes_and_prints_the_legend() -> None:
    frame = pd.DataFrame(
        {"name": ["<Austin>", "Loop"], "rows": [225381.0, 12.0], "arrest_rate": [0.2, np.nan], "x": [1, 2]}
    )
    page = html_table(
        frame,
        {
            "name": "area",
            "rows": Column("rows", "count", "test rows"),
            "arrest_rate": Column("arrest", "rate", "observed arrest rate"),
        },
    )
    assert "&lt;Austin&gt;" in page
    assert "<Austin>" not in page
    assert ">225,381<" in page
    assert ">20.0 %<" in page
    assert f">{MISSING}<" in page
    assert ">x</th>" not in page  # only the listed columns
    assert '<th class="n" title="observed arrest rate">arrest</th>' in page
    assert "<b>arrest</b>: observed arrest rate" in page
    assert not RAW_FLOAT.search(page)
    with pytest.raises(KeyError, match="'nope'"):
        html_table(frame, {"nope": "n"})


def test_html_table_guesses_kinds_from_dtypes() -> None:
    frame = pd.DataFrame({"n": [225381, 3], "v": [0.123456789, 1234.56789], "t": ["a", "b"]})
    page = html_table(frame)
    assert ">225,381<" in page
    assert ">0.123<" in page
    assert ">1,235<" in page
    assert not RAW_FLOAT.search(page)


def test_md_table_aligns_numbers_and_escapes_pipes() -> None:
    frame = pd.DataFrame({"name": ["a|b"], "ece": [0.01234]})
    text = md_table(frame, {"name": "area", "ece": Column("ECE", "metric", "expected calibration error")})
    lines = text.splitlines()
    assert lines[0] == "| area | ECE |"
    assert lines[1] == "| --- | ---: |"
    assert lines[2] == "| a\\|b | 0.0123 |"
    assert lines[-1] == "**ECE**: expected calibration error."
    assert list(cells(frame, {"ece": Column("ECE", "metric")})["ECE"]) == ["0.0123"]


def test_raw_float_pattern_catches_what_it_should() -> None:
    assert RAW_FLOAT.search("rows 225381.0000 in")
    assert RAW_FLOAT.search("0.812345")
    assert RAW_FLOAT.search("(1866.0 m)")
    assert not RAW_FLOAT.search("0.812 and 225,381 and 23.5 % and v1.2.3 and 2017-01-01 and 1,866.5")
    assert not RAW_FLOAT.search("0.00210 and 0.0123 and 41.1235 and 0.8100")


def test_title_name() -> None:
    assert title_name("WEST GARFIELD PARK") == "West Garfield Park"
    assert title_name("Near West") == "Near West"
    assert title_name(" LOOP ") == "Loop"
