"""Request validation, metadata, metrics and access logs of the model server, in-process (no HTTP)."""

from __future__ import annotations

import asyncio
import copy
import io
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from arrest_server.observability import JsonFormatter, Metrics, configure_logging, log_access
from arrest_server.validation import (
    TooManyRows,
    content_type,
    describe_validation_errors,
    input_metadata,
    output_metadata,
    parse_v1,
    parse_v2,
)
from kserve.errors import InvalidInput
from kserve.protocol.grpc.grpc_predict_v2_pb2 import InferParameter
from kserve.protocol.infer_type import InferRequest
from kserve.protocol.rest.v2_datamodels import InferenceRequest
from prometheus_client import CollectorRegistry, generate_latest

from chicago_arrest.core.parsing import FALSE_TEXT, TRUE_TEXT, parse_bools
from chicago_arrest.core.schema import FIELD_BY_NAME, MODEL_INPUT_COLUMNS
from chicago_arrest.model.inputs import category_array

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden"


def run(coroutine: Any) -> Any:
    """Await the (async) ``ArrestPredictor.predict`` from a test."""
    return asyncio.run(coroutine)


def golden_request() -> dict[str, Any]:
    return json.loads((GOLDEN / "v2_request.json").read_text())


def infer_request(body: dict[str, Any]) -> InferRequest:
    """What KServe hands the model for a V2 JSON body."""
    return InferRequest.from_inference_request(InferenceRequest.model_validate(body), "arrest-predictor")


def edit(body: dict[str, Any], name: str, **changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(body)
    for item in out["inputs"]:
        if item["name"] == name:
            item.update(changes)
    return out


def drop(body: dict[str, Any], name: str) -> dict[str, Any]:
    out = copy.deepcopy(body)
    out["inputs"] = [i for i in out["inputs"] if i["name"] != name]
    return out


def one_row(**fields: tuple[str, Any]) -> dict[str, Any]:
    """A one-row V2 body; ``fields`` maps a name to ``(datatype, value)``."""
    base: dict[str, tuple[str, Any]] = {
        "date": ("BYTES", "2017-03-01T13:05:00.000"),
        "primary_type": ("BYTES", "THEFT"),
        "iucr": ("BYTES", "0820"),
    }
    base.update(fields)
    return {
        "parameters": {"content_type": "pd"},
        "inputs": [{"name": n, "datatype": dt, "shape": [1], "data": [v]} for n, (dt, v) in base.items()],
    }


# -- the golden request --------------------------------------------------------------------------------------


def test_golden_request_parses_to_typed_columns() -> None:
    parsed = parse_v2(infer_request(golden_request()), max_rows=100)
    assert parsed.rows == 6
    assert set(parsed.frame.columns) == set(MODEL_INPUT_COLUMNS)
    assert "case_number" not in parsed.frame.columns  # not a model field: ignored
    assert pd.api.types.is_datetime64_dtype(parsed.frame["date"])
    assert parsed.frame["latitude"].dtype == np.float64
    assert parsed.frame["latitude"].isna().sum() == 1  # the row without coordinates
    assert parsed.frame["domestic"].dtype == bool


def test_golden_model_in_process_matches_expected() -> None:
    from chicago_arrest.registry.models import load_arrest_model

    expected = json.loads((GOLDEN / "v2_expected.json").read_text())
    model = load_arrest_model(str(GOLDEN / "model"))
    probabilities = model.predict_arrest_probability(parse_v2(infer_request(golden_request()), 100).frame)
    np.testing.assert_allclose(probabilities, expected["arrest_probability"], rtol=0, atol=1e-9)
    assert (probabilities >= model.threshold).tolist() == expected["arrest"]


# -- bad input → InvalidInput naming the field ---------------------------------------------------------------

BAD_V2: list[tuple[str, dict[str, Any], str]] = [
    ("missing date", drop(golden_request(), "date"), "date"),
    ("missing primary_type", drop(golden_request(), "primary_type"), "primary_type"),
    ("missing iucr", drop(golden_request(), "iucr"), "iucr"),
    ("latitude as BOOL", edit(golden_request(), "latitude", datatype="BOOL", data=[True] * 6), "latitude"),
    ("domestic as FP64", edit(golden_request(), "domestic", datatype="FP64", data=[1.0] * 6), "domestic"),
    (
        "primary_type as FP64",
        edit(golden_request(), "primary_type", datatype="FP64", data=[1.0] * 6),
        "primary_type",
    ),
    ("date as INT64", edit(golden_request(), "date", datatype="INT64", data=[1] * 6), "date"),
    ("shape disagrees", edit(golden_request(), "ward", shape=[5], data=[1] * 5), "ward"),
    ("shape vs data", edit(golden_request(), "ward", shape=[6], data=[1, 2, 3]), "ward"),
    ("2-D input", edit(golden_request(), "ward", shape=[3, 2]), "ward"),
    (
        "unparsable date",
        edit(golden_request(), "date", data=["yesterday"] + ["2017-03-01T10:00:00"] * 5),
        "date",
    ),
    ("empty date", edit(golden_request(), "date", data=[""] + ["2017-03-01T10:00:00"] * 5), "date"),
    ("null iucr", edit(golden_request(), "iucr", data=[None] * 6), "iucr"),
    ("number not parsable", one_row(latitude=("BYTES", "north")), "latitude"),
    ("bool not parsable", one_row(domestic=("BYTES", "maybe")), "domestic"),
    (
        "code of the wrong shape",
        one_row(iucr=("BYTES", "08200")),
        r"field 'iucr' must be a code of the shape",
    ),
    (
        "whole number with a fraction",
        one_row(ward=("FP64", 2.5)),
        r"field 'ward' must be a finite whole number",
    ),
    ("number with an underscore", one_row(latitude=("BYTES", "41_8")), "latitude"),
    ("BOOL with a number", one_row(domestic=("BOOL", 3)), "domestic"),
    ("infinite coordinate", one_row(x_coordinate=("FP64", float("inf"))), "x_coordinate"),
    ("text field with a number", one_row(description=("BYTES", 12)), "description"),
    ("duplicate input", {**one_row(), "inputs": one_row()["inputs"] * 2}, "appears more than once"),
    ("no inputs", {"parameters": {"content_type": "pd"}, "inputs": []}, "no inputs"),
    (
        "zero rows",
        {**one_row(), "inputs": [{**i, "shape": [0], "data": []} for i in one_row()["inputs"]]},
        "zero",
    ),
    ("no content_type", {"inputs": one_row()["inputs"]}, "content_type"),
    ("unknown content_type", {**one_row(), "parameters": {"content_type": "np"}}, "content_type"),
    ("unknown output", {**one_row(), "outputs": [{"name": "nope"}]}, "nope"),
]


@pytest.mark.parametrize(("body", "needle"), [(b, n) for _, b, n in BAD_V2], ids=[i for i, _, _ in BAD_V2])
def test_bad_v2_requests_raise_invalid_input_naming_the_field(body: dict[str, Any], needle: str) -> None:
    with pytest.raises(InvalidInput, match=needle):
        parse_v2(infer_request(body), max_rows=100)


def test_more_rows_than_the_maximum() -> None:
    with pytest.raises(TooManyRows, match="at most 5") as info:
        parse_v2(infer_request(golden_request()), max_rows=5)
    assert isinstance(info.value, InvalidInput)  # gRPC still maps it to INVALID_ARGUMENT


# -- lenient where it is safe -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"latitude": ("FP32", 41.8), "longitude": ("FP32", -87.6)},
        {"ward": ("INT32", 3), "community_area": ("FP64", 25.0)},
        {"latitude": ("BYTES", "41.8"), "ward": ("BYTES", " 7 ")},
        {"domestic": ("BYTES", "TRUE")},
        {"iucr": ("INT64", 486), "beat": ("INT64", 1234)},
        {"latitude": ("FP64", None), "x_coordinate": ("FP64", None)},
        {"primary_type": ("BYTES", "SOMETHING NEW"), "location_description": ("BYTES", "MOON")},
        {"extra_field": ("FP64", 1.0), "arrest": ("BOOL", True)},
    ],
    ids=[
        "fp32",
        "int32+fp64-int",
        "bytes-numbers",
        "bytes-bool",
        "int-codes",
        "null-coords",
        "unknown-cats",
        "extra",
    ],
)
def test_accepted_variants(fields: dict[str, tuple[str, Any]]) -> None:
    parsed = parse_v2(infer_request(one_row(**fields)), max_rows=10)
    assert parsed.rows == 1
    assert "extra_field" not in parsed.frame.columns
    assert "arrest" not in parsed.frame.columns  # the label is not a model input


def test_column_vectors_and_nested_data_are_accepted() -> None:
    body = one_row()
    for item in body["inputs"]:
        item["shape"], item["data"] = [1, 1], [item["data"]]
    assert parse_v2(infer_request(body), max_rows=10).rows == 1


def test_int_codes_are_read_by_the_code_parser() -> None:
    parsed = parse_v2(infer_request(one_row(iucr=("INT64", 486), beat=("BYTES", " 111 "))), max_rows=10)
    assert parsed.frame["iucr"].tolist() == [
        "0486"
    ]  # zero-padded, as the data contract and the model read it
    assert parsed.frame["beat"].tolist() == ["0111"]


def test_grpc_style_parameters() -> None:
    assert content_type({"content_type": InferParameter(string_param="pd")}) == "pd"
    assert content_type({"content_type": "pd"}) == "pd"
    assert content_type(None) is None


def test_binary_tensors_decode() -> None:
    """tritonclient's binary BYTES arrive as raw bytes; KServe hands them over as decoded lists."""
    from kserve.protocol.infer_type import InferInput

    date = InferInput("date", [1], "BYTES")
    date.set_data_from_numpy(np.array([b"2017-03-01T13:05:00.000"], dtype=object), binary_data=True)
    date._data = []  # as from gRPC raw_input_contents: only the raw bytes are there
    ptype = InferInput("primary_type", [1], "BYTES", data=[b"THEFT"])
    iucr = InferInput("iucr", [1], "BYTES", data=["0820"])
    request = InferRequest("m", [date, ptype, iucr], parameters={"content_type": "pd"})
    frame = parse_v2(request, max_rows=10).frame
    assert frame["primary_type"].tolist() == ["THEFT"]
    assert frame["date"].iloc[0] == pd.Timestamp("2017-03-01T13:05:00")


# -- V1 -----------------------------------------------------------------------------------------------------

ROW = {"date": "2017-03-01T13:05:00.000", "primary_type": "THEFT", "iucr": "0820", "domestic": False}


def test_v1_rows() -> None:
    parsed = parse_v1({"instances": [ROW, {**ROW, "latitude": 41.8, "unknown": 1}]}, max_rows=10)
    assert parsed.rows == 2
    assert parsed.frame["latitude"].isna().tolist() == [True, False]
    assert parse_v1(json.dumps({"instances": [ROW]}).encode(), max_rows=10).rows == 1


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"instances": []}, "zero rows"),
        ({"instances": [1, 2]}, "objects"),
        ({"rows": [ROW]}, "instances"),
        ({"instances": [{k: v for k, v in ROW.items() if k != "iucr"}]}, "iucr"),
        ({"instances": [ROW, {**ROW, "iucr": None}]}, "iucr"),
        ({"instances": [{**ROW, "latitude": True}]}, "latitude"),
        ({"instances": [{**ROW, "date": "not a date"}]}, "date"),
        (b"{not json", "JSON"),
        ({"instances": [ROW] * 11}, "at most 10"),
    ],
)
def test_bad_v1_requests(body: Any, needle: str) -> None:
    with pytest.raises(InvalidInput, match=needle):
        parse_v1(body, max_rows=10)


# -- metadata, FastAPI errors -------------------------------------------------------------------------------


def test_metadata_lists_every_model_field_with_its_datatype() -> None:
    inputs = {i["name"]: i["datatype"] for i in input_metadata()}
    assert list(inputs) == list(MODEL_INPUT_COLUMNS)
    assert inputs["date"] == "BYTES"
    assert inputs["domestic"] == "BOOL"
    assert inputs["latitude"] == "FP64"
    assert inputs["ward"] == "INT64"
    assert {o["name"]: o["datatype"] for o in output_metadata()} == {
        "arrest_probability": "FP64",
        "arrest": "BOOL",
    }


def test_fastapi_validation_errors_become_one_line() -> None:
    errors = [
        {"type": "missing", "loc": ("body", "InferenceRequest", "inputs"), "msg": "Field required"},
        {"type": "bytes_type", "loc": ("body", "bytes"), "msg": "Input should be a valid bytes"},
    ]
    assert describe_validation_errors(errors) == "inputs: Field required"
    assert "not valid JSON" in describe_validation_errors(
        [{"type": "json_invalid", "loc": ("body", 0), "msg": "JSON decode error", "ctx": {"error": "x"}}]
    )
    assert describe_validation_errors([{"type": "missing", "loc": ("body",), "msg": "Field required"}]) == (
        "the request body is empty"
    )


# -- metrics and access log ---------------------------------------------------------------------------------


def test_metrics_by_version_role_outcome() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.observe(
        model_version="3",
        role="champion",
        outcome="ok",
        protocol="v2",
        seconds=0.004,
        probabilities=np.array([0.05, 0.95]),
    )
    metrics.observe(model_version="4", role="challenger", outcome="invalid", protocol="v1", seconds=0.001)
    metrics.set_serving({"champion": "3", "challenger": "4"}, 10)
    text = generate_latest(registry).decode()
    assert (
        'arrest_server_requests_total{model_version="3",outcome="ok",protocol="v2",role="champion"} 1.0'
        in text
    )
    assert (
        'arrest_server_requests_total{model_version="4",outcome="invalid",protocol="v1",role="challenger"} 1.0'
        in text
    )
    assert (
        'arrest_server_request_duration_seconds_bucket{le="0.005",model_version="3",role="champion"} 1.0'
        in text
    )
    assert 'arrest_server_predicted_probability_bucket{le="0.1",model_version="3"} 1.0' in text
    assert 'arrest_server_predicted_probability_bucket{le="+Inf",model_version="3"} 2.0' in text
    assert 'arrest_server_predicted_probability_count{model_version="3"} 2.0' in text
    assert 'arrest_server_rows_total{model_version="3"} 2.0' in text
    assert "arrest_server_canary_percent 10.0" in text
    assert 'arrest_server_model_info{model_version="4",role="challenger"} 1.0' in text


def test_access_log_is_one_json_line() -> None:
    names = ("arrest_server", "chicago_arrest", "arrest_server.access")
    saved = {
        n: (lg.handlers[:], lg.level, lg.propagate, lg.disabled)
        for n in names
        if (lg := logging.getLogger(n))
    }
    stream = io.StringIO()
    try:
        configure_logging("INFO", access_log=True, stream=stream)
        log_access(request_id="r1", model_version="3", role="champion", rows=2, latency_ms=4.2, status=200)
    finally:
        for name, (handlers, level, propagate, disabled) in saved.items():
            logger = logging.getLogger(name)
            logger.handlers, logger.propagate, logger.disabled = handlers, propagate, disabled
            logger.setLevel(level)
    line = json.loads(stream.getvalue().strip())
    assert line["request_id"] == "r1"
    assert line["model_version"] == "3"
    assert line["latency_ms"] == 4.2
    assert line["status"] == 200


def test_json_formatter_keeps_exceptions() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed %s", ("here",), sys.exc_info())
    doc = json.loads(JsonFormatter().format(record))
    assert doc["msg"] == "failed here"
    assert "ValueError: boom" in doc["exc"]


# -- the kserve.Model in-process (no HTTP) -----------------------------------------------------------------


@pytest.fixture(scope="module")
def predictor(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """An ArrestPredictor serving the golden model as champion and challenger (50 %), without a server."""
    from arrest_server.loading import load_model
    from arrest_server.model import ArrestPredictor
    from arrest_server.router import Deployment, DeploymentHolder
    from arrest_server.settings import ServerSettings

    from chicago_arrest.core.settings import Settings
    from chicago_arrest.registry.state import ModelRef

    registry = CollectorRegistry()
    model = ArrestPredictor(
        ServerSettings(max_rows=100),
        library_settings=Settings(data_dir=tmp_path_factory.mktemp("predictor-data")),  # its request log
        metrics=Metrics(registry),
    )
    model.test_registry = registry
    champion = load_model(ModelRef("7", str(GOLDEN / "model")))
    challenger = load_model(ModelRef("8", str(GOLDEN / "model")))
    model.holder = DeploymentHolder(Deployment(champion, challenger, 50))
    model.ready = True
    return model


def test_predict_v2_in_process(predictor: Any) -> None:
    headers: dict[str, str] = {}
    response = run(predictor.predict(infer_request(golden_request()), {}, headers))
    rest, _ = response.to_rest()
    expected = json.loads((GOLDEN / "v2_expected.json").read_text())
    outputs = {o["name"]: o["data"] for o in rest["outputs"]}
    np.testing.assert_allclose(
        outputs["arrest_probability"], expected["arrest_probability"], rtol=0, atol=1e-9
    )
    assert outputs["arrest"] == expected["arrest"]
    assert rest["id"] == "golden-1"
    assert rest["model_version"] == headers["x-model-version"]
    assert headers["x-model-role"] == ("challenger" if headers["x-model-version"] == "8" else "champion")


def test_predict_v1_in_process_uses_the_request_id_header(predictor: Any) -> None:
    from arrest_server.router import bucket

    headers: dict[str, str] = {}
    body = {"instances": [ROW]}
    response = run(predictor.predict(body, {"x-request-id": "abc"}, headers))
    assert response["id"] == headers["x-request-id"] == "abc"
    assert headers["x-model-role"] == ("challenger" if bucket("abc") < 50 else "champion")
    assert len(response["predictions"]) == len(response["arrest"]) == 1


def test_unexpected_model_error_is_a_short_500(predictor: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from kserve.errors import InferenceError

    deployment = predictor.holder.current

    def boom(frame: pd.DataFrame) -> np.ndarray:
        raise ValueError("X has 3 features, but the model expects 4")

    for served in deployment.models().values():
        monkeypatch.setattr(served.model, "predict_arrest_probability", boom)
    with pytest.raises(InferenceError) as info:
        run(predictor.predict({"instances": [ROW]}, {"x-request-id": "r-500"}, {}))
    message = str(info.value)
    assert "r-500" in message
    assert "ValueError" in message
    assert "Traceback" not in message
    assert "features" not in message  # details stay in the server log


def test_invalid_input_is_counted_and_reraised(predictor: Any) -> None:
    with pytest.raises(InvalidInput, match="primary_type"):
        run(
            predictor.predict(
                {"instances": [{"date": "2017-01-01T00:00:00", "iucr": "0820"}]}, {"x-request-id": "q"}, {}
            )
        )
    text = generate_latest(predictor.test_registry).decode()
    assert 'outcome="invalid",protocol="v1"' in text


@pytest.mark.parametrize("text", sorted({*TRUE_TEXT, *FALSE_TEXT, "TRUE", " F ", "yes", "2"}))
def test_server_contract_and_model_share_the_boolean_spellings(text: str) -> None:
    """One rule (chicago_arrest.core.parsing): a spelling the data contract accepts, the server and model accept."""
    expected = {"true": True, "false": False}.get(
        category_array(pd.Series([text]), FIELD_BY_NAME["domestic"])[0]
    )
    contract, bad = parse_bools(pd.Series([text]))
    assert bool(bad[0]) is (expected is None)
    body = infer_request(one_row(domestic=("BYTES", text)))
    if expected is None:
        with pytest.raises(InvalidInput, match="domestic"):
            parse_v2(body, max_rows=10)
        return
    assert bool(contract[0]) is expected
    assert bool(parse_v2(body, max_rows=10).frame.loc[0, "domestic"]) is expected
    assert (text.strip().lower() in TRUE_TEXT) is expected


def test_metadata_names_the_served_versions_and_their_model_cards(predictor: Any) -> None:
    """Issue 14: the V2 metadata response says which versions serve and where each one's model card is."""
    from dataclasses import replace

    from arrest_server.router import Deployment

    before = predictor.deployment
    champion = replace(before.champion, card="runs:/abc/model_card/model_card.html")
    predictor.holder.swap(Deployment(champion, replace(before.challenger, card=""), 50))
    try:
        meta = predictor.metadata()
    finally:
        predictor.holder.swap(before)
    assert meta["name"] == predictor.name
    assert meta["versions"] == ["7", "8"]
    assert [i["name"] for i in meta["inputs"]] == list(MODEL_INPUT_COLUMNS)
    assert meta["parameters"]["champion_version"] == "7"
    assert meta["parameters"]["challenger_version"] == "8"
    assert meta["parameters"]["canary_percent"] == 50
    assert meta["parameters"]["model_card"] == "runs:/abc/model_card/model_card.html"
    assert "challenger_model_card" not in meta["parameters"]  # logged without a card: nothing is made up


def test_model_card_reference_reads_the_mlmodel_metadata(tmp_path: Path) -> None:
    from chicago_arrest.registry.models import model_card_reference

    (tmp_path / "MLmodel").write_text(
        "flavors: {}\nmetadata:\n  model_card: runs:/r1/model_card/model_card.html\n"
    )
    assert model_card_reference(tmp_path) == "runs:/r1/model_card/model_card.html"
    (tmp_path / "MLmodel").write_text("flavors: {}\n")
    assert model_card_reference(tmp_path) == ""
    assert model_card_reference(tmp_path / "missing") == ""


def test_claimed_rows_reads_shapes_and_instances_only() -> None:
    import sys

    from arrest_server.validation import claimed_rows
    from kserve.protocol.infer_type import InferInput, InferRequest

    def v2(*shapes: Any) -> InferRequest:
        inputs = [
            InferInput(name=f"f{i}", shape=shape, datatype="BYTES", data=[]) for i, shape in enumerate(shapes)
        ]
        return InferRequest(model_name="m", infer_inputs=inputs)

    assert claimed_rows(v2([1], [3, 1])) == 3
    assert claimed_rows(v2([2], "x")) == 2  # an input without a list shape is the parser's to refuse
    assert claimed_rows(v2([2.0])) == sys.maxsize
    assert claimed_rows(v2()) == sys.maxsize
    assert claimed_rows({"instances": [{}, {}]}) == 2
    assert claimed_rows({"instances": "x"}) == sys.maxsize
    assert claimed_rows(b"{}") == sys.maxsize


# -- issue 26: the report's id and case_number ride along, logged, never scored ----------------------------


def with_keys(body: dict[str, Any], ids: list[Any], datatype: str = "INT64") -> dict[str, Any]:
    out = copy.deepcopy(body)
    out["inputs"].append({"name": "id", "shape": [len(ids)], "datatype": datatype, "data": ids})
    return out


def test_v2_and_v1_record_keys_are_parsed_but_not_model_columns() -> None:
    body = golden_request()
    n = body["inputs"][0]["shape"][0]
    ids = [10_000_000 + i for i in range(n - 1)] + [None]
    parsed = parse_v2(infer_request(with_keys(body, ids)), max_rows=100)
    assert "id" not in parsed.columns
    assert "case_number" not in parsed.columns
    assert parsed.keys is not None
    assert list(parsed.keys["id"]) == [str(i) for i in ids[:-1]] + [None]
    cases = next(i["data"] for i in body["inputs"] if i["name"] == "case_number")
    assert list(parsed.keys["case_number"]) == [c or None for c in cases]
    text_ids = parse_v2(infer_request(with_keys(body, [str(i) for i in ids[:-1]] + [""], "BYTES")), 100)
    assert list(text_ids.keys["id"]) == list(parsed.keys["id"])  # type: ignore[index]
    v1 = parse_v1({"instances": [{**ROW, "id": 7, "case_number": "JA1"}, ROW]}, max_rows=10)
    assert v1.keys is not None
    assert list(v1.keys["id"]) == ["7", None]
    assert list(v1.keys["case_number"]) == ["JA1", None]
    assert parse_v1({"instances": [ROW]}, max_rows=10).keys is None


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda b: with_keys(b, [1.5] * 6, "FP64"), "input 'id' has datatype FP64"),
        (lambda b: with_keys(b, [1, 2], "INT64"), "'id' has 2"),
        (lambda b: with_keys(b, [True] * 6, "BYTES"), "field 'id' must be text or integers"),
    ],
)
def test_bad_record_keys_are_a_400_naming_the_field(mutate: Any, needle: str) -> None:
    with pytest.raises(InvalidInput, match=needle):
        parse_v2(infer_request(mutate(golden_request())), max_rows=100)


def test_record_keys_are_logged_and_do_not_change_the_answer(predictor: Any, tmp_path: Path) -> None:
    from arrest_server.request_log import RequestLog

    body = golden_request()
    n = body["inputs"][0]["shape"][0]
    predictor.request_log = RequestLog(tmp_path / "log")
    try:
        plain = run(predictor.predict(infer_request(body), {}, {})).to_rest()[0]
        keyed = run(predictor.predict(infer_request(with_keys(body, list(range(n)))), {}, {})).to_rest()[0]
        v1 = run(predictor.predict({"instances": [{**ROW, "id": 99}]}, {"x-request-id": "k1"}, {}))
    finally:
        predictor.request_log.close()
        predictor.request_log = None
    assert plain["outputs"] == keyed["outputs"]
    assert len(v1["predictions"]) == 1
    logged = pd.concat([pd.read_parquet(p) for p in sorted((tmp_path / "log").glob("*.parquet"))])
    assert len(logged) == 2 * n + 1
    assert [None if pd.isna(v) else v for v in logged["id"]] == [None] * n + [str(i) for i in range(n)] + [
        "99"
    ]
    cases = [c for c in next(i["data"] for i in body["inputs"] if i["name"] == "case_number") if c]
    assert logged["case_number"].dropna().tolist() == cases + cases
