"""End-to-end fuzzing of request bodies: whatever a client sends, the server never answers 5xx, and it still
answers a good request afterwards (one server for the module; bounded hypothesis examples).

Two parts: property-based V2 and V1 bodies (hypothesis builds them from the real field names, datatypes and
shapes, then breaks them), and a fixed corpus of the nastiest cases (deep nesting, NaN/Infinity literals,
shapes of 10^12, wrong datatypes, duplicated inputs, unicode and binary bodies).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chicago_arrest.core.schema import FIELDS
from tests.e2e.helpers import GOLDEN, MODEL, Server, start_server

pytestmark = pytest.mark.slow

JSON = {"content-type": "application/json"}
FIELD_NAMES = [f.name for f in FIELDS]
DATATYPES = [
    "BYTES",
    "BOOL",
    "FP64",
    "FP32",
    "FP16",
    "INT64",
    "INT32",
    "INT8",
    "UINT64",
    "UINT8",
    "bytes",
    "",
]
FUZZ = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,  # the same bodies every run: a failure reproduces
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("fuzz-e2e")
    srv = start_server(
        ["--model_dir", str(GOLDEN / "model")],
        root / "server.log",
        ARREST_SERVER_MODEL_VERSION="golden-1",
        ARREST_DATA_DIR=str(root / "data"),
        ARREST_SERVER_MAX_ROWS="1000",
        ARREST_SERVER_ACCESS_LOG="false",
    )
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


def post(server: Server, url: str, body: bytes, headers: dict[str, str] | None = None) -> requests.Response:
    r = server.session.post(url, data=body, headers=JSON if headers is None else headers, timeout=60)
    assert r.status_code < 500, f"{r.status_code} for {body[:300]!r}: {r.text[:500]}"
    return r


def assert_still_answers(server: Server) -> None:
    r = server.session.post(server.infer_url, data=(GOLDEN / "v2_request.json").read_bytes(), headers=JSON)
    assert r.status_code == 200, r.text


def v1_url(server: Server) -> str:
    return f"{server.url}/v1/models/{MODEL}:predict"


def dumps(value: Any) -> bytes:
    """JSON as a lax client writes it (NaN / Infinity literals allowed)."""
    return json.dumps(value, allow_nan=True).encode()


# -- property-based ------------------------------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["2017-03-01T13:05:00.000", "THEFT", "0820", "true", "1e999", "-0", "", "NaN"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
shapes = st.one_of(
    st.lists(st.integers(min_value=-2, max_value=4), min_size=0, max_size=3),
    st.lists(st.sampled_from([10**12, 2**63 - 1, 2**64, -(2**63), 1001, 0]), min_size=1, max_size=2),
    json_values,
)


@st.composite
def v2_inputs(draw: st.DrawFn) -> dict[str, Any]:
    rows = draw(st.integers(min_value=0, max_value=3))
    item: dict[str, Any] = {
        "name": draw(st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=10))),
        "shape": draw(st.one_of(st.just([rows]), st.just([rows, 1]), shapes)),
        "datatype": draw(st.sampled_from(DATATYPES)),
        "data": draw(st.one_of(st.lists(scalars, min_size=rows, max_size=rows), json_values)),
    }
    if draw(st.booleans()):
        item["parameters"] = draw(st.one_of(st.just({"content_type": "str"}), json_values))
    for key in draw(st.lists(st.sampled_from(["name", "shape", "datatype", "data"]), max_size=1)):
        item.pop(key)
    return item


@st.composite
def v2_bodies(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {
        "inputs": draw(st.lists(v2_inputs(), max_size=6)),
        "parameters": draw(st.one_of(st.just({"content_type": "pd"}), json_values)),
    }
    if draw(st.booleans()):
        body["id"] = draw(json_values)
    if draw(st.booleans()):
        body["outputs"] = draw(
            st.one_of(st.lists(st.fixed_dictionaries({"name": st.text(max_size=20)})), json_values)
        )
    return body


@st.composite
def v1_bodies(draw: st.DrawFn) -> Any:
    row = st.dictionaries(
        st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=8)), json_values, max_size=8
    )
    return draw(
        st.one_of(
            st.fixed_dictionaries({"instances": st.lists(row, max_size=4)}),
            st.fixed_dictionaries({"instances": json_values}),
            json_values,
        )
    )


@FUZZ
@given(body=v2_bodies())
def test_v2_bodies_never_5xx(server: Server, body: dict[str, Any]) -> None:
    post(server, server.infer_url, dumps(body))


@FUZZ
@given(body=v1_bodies())
def test_v1_bodies_never_5xx(server: Server, body: Any) -> None:
    post(server, v1_url(server), dumps(body))


@settings(FUZZ, max_examples=60)
@given(
    body=st.binary(max_size=300),
    content_type=st.sampled_from(["application/json", "application/octet-stream", ""]),
)
def test_binary_bodies_never_5xx(server: Server, body: bytes, content_type: str) -> None:
    headers = {"content-type": content_type} if content_type else {}
    post(server, server.infer_url, body, headers)
    post(server, v1_url(server), body, headers)


def test_the_server_still_answers_after_the_properties(server: Server) -> None:
    assert_still_answers(server)


# -- fixed corpus ---------------------------------------------------------------------------------------------


def golden() -> dict[str, Any]:
    return json.loads((GOLDEN / "v2_request.json").read_text())


def with_input(name: str, **changes: Any) -> bytes:
    body = golden()
    for item in body["inputs"]:
        if item["name"] == name:
            item.update(changes)
    return dumps(body)


def all_shapes(shape: Any) -> bytes:
    body = golden()
    for item in body["inputs"]:
        item["shape"] = shape
    return dumps(body)


def duplicated(name: str) -> bytes:
    body = golden()
    body["inputs"] += [i for i in body["inputs"] if i["name"] == name]
    return dumps(body)


def nested_data(depth: int) -> bytes:
    """The golden body with ``latitude``'s data nested ``depth`` lists deep (built as text: too deep for json)."""
    return with_input("latitude", data="NESTED").replace(b'"NESTED"', b"[" * depth + b"]" * depth)


ROW = {"date": "2017-03-01T13:05:00.000", "primary_type": "THEFT", "iucr": "0820"}
CORPUS: dict[str, tuple[str, bytes]] = {
    "v2 nested 100k arrays": ("v2", b"[" * 100_000 + b"]" * 100_000),
    "v2 nested 100k objects in inputs": ("v2", b'{"inputs":' + b'{"a":' * 100_000 + b"1" + b"}" * 100_001),
    "v2 nested data 5k deep": ("v2", nested_data(5000)),
    "v2 nested data 900 deep": ("v2", nested_data(900)),
    "v2 unclosed nesting": ("v2", b'{"inputs":[' * 50_000),
    "v2 NaN literal in FP64": ("v2", with_input("latitude", data=[math.nan] * 6)),
    "v2 Infinity literal in FP64": ("v2", with_input("latitude", data=[math.inf, -math.inf, 1, 2, 3, 4])),
    "v2 Infinity as text in BYTES": ("v2", with_input("latitude", datatype="BYTES", data=["Infinity"] * 6)),
    "v2 NaN id": ("v2", dumps({**golden(), "id": math.nan})),
    "v2 shape 10^12": ("v2", all_shapes([10**12])),
    "v2 shape 10^12 x 10^12": ("v2", all_shapes([10**12, 10**12])),
    "v2 shape 2^64": ("v2", all_shapes([2**64])),
    "v2 shape -1": ("v2", all_shapes([-1])),
    "v2 shape as text": ("v2", all_shapes(["6"])),
    "v2 shape float": ("v2", all_shapes([6.0])),
    "v2 shape empty": ("v2", all_shapes([])),
    "v2 shape [6, 10^12]": ("v2", all_shapes([6, 10**12])),
    "v2 date as FP64": ("v2", with_input("date", datatype="FP64")),
    "v2 date numbers as BYTES": ("v2", with_input("date", data=[1, 2, 3, 4, 5, 6])),
    "v2 iucr as BOOL": ("v2", with_input("iucr", datatype="BOOL")),
    "v2 domestic as FP16": ("v2", with_input("domestic", datatype="FP16")),
    "v2 unknown datatype": ("v2", with_input("ward", datatype="COMPLEX128")),
    "v2 lowercase datatype": ("v2", with_input("ward", datatype="fp64")),
    "v2 ints over int64": ("v2", with_input("ward", datatype="INT64", data=[2**70] * 6)),
    "v2 data object": ("v2", with_input("ward", data={"a": 1})),
    "v2 data string": ("v2", with_input("primary_type", data="THEFT")),
    "v2 ragged data": ("v2", with_input("primary_type", data=[["THEFT"], "THEFT", [], [[1]], None, 3])),
    "v2 duplicated date": ("v2", duplicated("date")),
    "v2 duplicated latitude": ("v2", duplicated("latitude")),
    "v2 inputs object": ("v2", dumps({"parameters": {"content_type": "pd"}, "inputs": {"name": "date"}})),
    "v2 inputs null": ("v2", dumps({"parameters": {"content_type": "pd"}, "inputs": None})),
    "v2 parameters list": ("v2", dumps({**golden(), "parameters": ["pd"]})),
    "v2 content_type number": ("v2", dumps({**golden(), "parameters": {"content_type": 1}})),
    "v2 unicode everywhere": (
        "v2",
        with_input("primary_type", data=["\u0000", "\ud7ff\ue000", "🚓" * 1000, "\u202e", "Ω", "\x7f"]),
    ),
    "v2 lone surrogate escape": (
        "v2",
        with_input("primary_type", data=["x"] * 6).replace(b'"x"', b'"\\ud800"'),
    ),
    "v2 invalid utf-8": (
        "v2",
        b'{"inputs": [{"name": "\xff\xfe", "shape": [1], "datatype": "BYTES", "data": ["\xc3"]}]}',
    ),
    "v2 utf-16 body": ("v2", json.dumps(golden()).encode("utf-16")),
    "v2 binary garbage": ("v2", bytes(range(256)) * 4),
    "v2 empty body": ("v2", b""),
    "v2 null body": ("v2", b"null"),
    "v2 huge number literal": (
        "v2",
        with_input("ward", data=[1] * 6).replace(b"[1, 1, 1, 1, 1, 1]", b"[1e999999, 1, 1, 1, 1, 1]"),
    ),
    "v2 outputs unknown": ("v2", dumps({**golden(), "outputs": [{"name": "nope"}]})),
    "v1 nested 100k arrays": ("v1", b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
    "v1 NaN and Infinity literals": (
        "v1",
        dumps({"instances": [{**ROW, "latitude": math.nan, "longitude": math.inf, "ward": -math.inf}]}),
    ),
    "v1 instances 10^6 empty rows": ("v1", b'{"instances": [' + b"{}," * 999_999 + b"{}]}"),
    "v1 instances string": ("v1", dumps({"instances": "x"})),
    "v1 instances of lists": ("v1", dumps({"instances": [[1, 2], [3]]})),
    "v1 date as number": ("v1", dumps({"instances": [{**ROW, "date": 20170301}]})),
    "v1 domestic as object": ("v1", dumps({"instances": [{**ROW, "domestic": {"a": 1}}]})),
    "v1 duplicated keys": (
        "v1",
        b'{"instances": [{"date": "2017-03-01T13:05:00", "date": 1, "iucr": "0820", "primary_type": "THEFT"}]}',
    ),
    "v1 unicode keys": ("v1", dumps({"instances": [{**ROW, "🚓": 1, "\u0000": None}]})),
    "v1 binary garbage": ("v1", bytes(range(256)) * 4),
    "v1 empty body": ("v1", b""),
}


TOO_LARGE = {"v2 shape 10^12", "v2 shape 2^64", "v1 instances 10^6 empty rows"}


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_corpus_never_5xx(server: Server, case: str) -> None:
    protocol, body = CORPUS[case]
    r = post(server, server.infer_url if protocol == "v2" else v1_url(server), body)
    doc = r.json()
    if case in TOO_LARGE:
        assert r.status_code == 413, r.text
    if r.status_code != 200:
        assert r.status_code in (400, 413), r.text
        assert doc.get("error") or doc.get("detail"), r.text  # a message, never an empty answer


def test_the_server_still_answers_after_the_corpus(server: Server) -> None:
    assert_still_answers(server)
