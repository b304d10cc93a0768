"""End-to-end: the fast V2 infer path answers exactly what KServe's own route answers.

Two servers serve the committed golden model, one with ``arrest_server.fast_infer`` (the default) and one with
``ARREST_SERVER_FAST_INFER=false``; every request below goes to both, and status, body and headers must agree.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.e2e.helpers import GOLDEN, MODEL, Server, start_server

pytestmark = pytest.mark.slow

GOLDEN_REQUEST = json.loads((GOLDEN / "v2_request.json").read_text())
#: Headers that must be the same on both paths (date and server differ by time and are not compared).
COMPARED_HEADERS = (
    "content-type",
    "x-model-version",
    "x-model-role",
    "x-request-id",
    "inference-header-content-length",
)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    root = tmp_path_factory.mktemp("fast-infer")
    common = {"ARREST_SERVER_MODEL_VERSION": "golden-1", "ARREST_DATA_DIR": str(root / "data")}
    fast = start_server(["--model_dir", str(GOLDEN / "model")], root / "fast.log", **common)
    kserve = start_server(
        ["--model_dir", str(GOLDEN / "model")],
        root / "kserve.log",
        ARREST_SERVER_FAST_INFER="false",
        **common,
    )
    try:
        fast.wait_ready()
        kserve.wait_ready()
        yield fast, kserve
    finally:
        fast.stop()
        kserve.stop()


def _edited(**changes: Any) -> bytes:
    body = copy.deepcopy(GOLDEN_REQUEST)
    body.update(changes)
    return json.dumps(body).encode()


def _first_input_as(datatype: str) -> bytes:
    body = copy.deepcopy(GOLDEN_REQUEST)
    body["inputs"][0]["datatype"] = datatype
    return json.dumps(body).encode()


CASES: dict[str, tuple[bytes, dict[str, str]]] = {
    "golden": (json.dumps(GOLDEN_REQUEST).encode(), {}),
    "no id, request id header": (_edited(id=None), {"x-request-id": "from-header"}),
    "requested output": (_edited(outputs=[{"name": "arrest"}]), {}),
    "binary outputs": (_edited(parameters={"content_type": "pd", "binary_data_output": True}), {}),
    "explain parameter": (_edited(parameters={"content_type": "pd", "explain": True}), {}),
    "charset in content type": (
        json.dumps(GOLDEN_REQUEST).encode(),
        {"content-type": "application/json; charset=utf-8"},
    ),
    "not json": (b"{not json", {}),
    "not a V2 request": (b'{"instances": [1]}', {}),
    "wrong datatype": (_first_input_as("FP32"), {}),
    "no inputs": (_edited(inputs=[]), {}),
    "nan literal": (json.dumps(GOLDEN_REQUEST).replace('"2017', 'NaN, "2017', 1).encode(), {}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_fast_path_answers_like_kserves_route(servers: tuple[Server, Server], case: str) -> None:
    body, headers = CASES[case]
    headers = {"content-type": "application/json", **headers}
    fast, kserve = servers
    a = requests.post(fast.infer_url, data=body, headers=headers, timeout=30)
    b = requests.post(kserve.infer_url, data=body, headers=headers, timeout=30)
    assert a.status_code == b.status_code, (a.text[:300], b.text[:300])
    if (
        a.headers.get("content-type", "").startswith("application/json")
        and "inference-header-content-length" not in a.headers
    ):
        assert a.json() == b.json()
    else:
        assert a.content == b.content
    for name in COMPARED_HEADERS:
        assert a.headers.get(name) == b.headers.get(name), name
    if case == "golden":
        assert a.status_code == 200
        assert a.headers["x-model-version"] == "golden-1"


def test_requests_the_fast_path_leaves_alone_still_answer(servers: tuple[Server, Server]) -> None:
    fast, _ = servers
    versioned = f"{fast.url}/v2/models/{MODEL}/versions/1/infer"
    unknown = f"{fast.url}/v2/models/no-such-model/infer"
    body = json.dumps(GOLDEN_REQUEST).encode()
    assert requests.post(unknown, data=body, timeout=30).status_code == 404
    assert requests.post(versioned, data=body, timeout=30).status_code in (400, 404, 501)
    assert requests.post(fast.infer_url, data=body, timeout=30).status_code == 200  # still answering
