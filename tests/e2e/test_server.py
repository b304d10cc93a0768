"""End-to-end: the real KServe model server (``python -m arrest_server``) in a subprocess, over HTTP.

Two servers run side by side: the *golden* one serves the committed model folder (as on the cluster,
``--model_dir``), the *state* one serves champion + challenger from a fresh MLflow registry through the local
serving state, which the tests change while it runs (canary, rollback, promotion under load).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
import requests

from tests.e2e.helpers import GOLDEN, MODEL, REPO_ROOT, Server, Stack, child_env

pytestmark = pytest.mark.slow

JSON = {"content-type": "application/json"}
EXPECTED = json.loads((GOLDEN / "v2_expected.json").read_text())


def golden_request() -> dict[str, Any]:
    return json.loads((GOLDEN / "v2_request.json").read_text())


def golden_rows() -> list[dict[str, Any]]:
    """The golden request as V1 rows."""
    body = golden_request()
    n = body["inputs"][0]["shape"][0]
    return [{i["name"]: i["data"][r] for i in body["inputs"]} for r in range(n)]


def single_row_body(request_id: str | None = None) -> bytes:
    body = golden_request()
    for item in body["inputs"]:
        item["data"], item["shape"] = item["data"][:1], [1]
    if request_id is None:
        body.pop("id")
    else:
        body["id"] = request_id
    return json.dumps(body).encode()


def output(response: dict[str, Any], name: str) -> list[Any]:
    return next(o["data"] for o in response["outputs"] if o["name"] == name)


# ------------------------------------------------------------------------------------------------------------
# The golden server: one model folder, V2 JSON, V2 binary (tritonclient), V1, errors, metadata
# ------------------------------------------------------------------------------------------------------------


def test_golden_request_gives_the_expected_probabilities(stack: Stack) -> None:
    r = stack.golden.session.post(stack.golden.infer_url, data=json.dumps(golden_request()), headers=JSON)
    assert r.status_code == 200, r.text
    body = r.json()
    np.testing.assert_allclose(
        output(body, "arrest_probability"), EXPECTED["arrest_probability"], rtol=0, atol=1e-9
    )
    assert output(body, "arrest") == EXPECTED["arrest"]
    assert {o["name"]: o["datatype"] for o in body["outputs"]} == {
        "arrest_probability": "FP64",
        "arrest": "BOOL",
    }
    assert body["model_version"] == "golden-1"
    assert body["id"] == "golden-1"
    assert r.headers["x-model-version"] == "golden-1"
    assert r.headers["x-model-role"] == "champion"


def test_request_without_id_gets_one(stack: Stack) -> None:
    r = stack.golden.session.post(stack.golden.infer_url, data=single_row_body(None), headers=JSON)
    assert r.status_code == 200, r.text
    assert r.json()["id"]
    assert r.json()["id"] == r.headers["x-request-id"]
    r = stack.golden.session.post(
        stack.golden.infer_url, data=single_row_body(None), headers={**JSON, "x-request-id": "hdr-7"}
    )
    assert r.json()["id"] == "hdr-7"


def test_tritonclient_binary_tensors(stack: Stack) -> None:
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(url=f"127.0.0.1:{stack.golden.http_port}")
    try:
        assert client.is_server_live()
        assert client.is_server_ready()
        assert client.is_model_ready(MODEL)
        metadata = client.get_model_metadata(MODEL)
        datatypes = {i["name"]: i["datatype"] for i in metadata["inputs"]}
        assert datatypes["date"] == "BYTES"
        assert datatypes["domestic"] == "BOOL"
        assert datatypes["ward"] == "INT64"
        assert datatypes["latitude"] == "FP64"

        inputs = []
        for item in golden_request()["inputs"]:
            dt, data = item["datatype"], item["data"]
            if dt == "BYTES":
                array = np.array([("" if v is None else v).encode() for v in data], dtype=np.object_)
            elif dt == "BOOL":
                array = np.array(data, dtype=bool)
            elif dt == "INT64":
                array = np.array(data, dtype=np.int64)
            else:
                array = np.array([np.nan if v is None else v for v in data], dtype=np.float64)
            tensor = httpclient.InferInput(item["name"], list(array.shape), dt)
            tensor.set_data_from_numpy(array, binary_data=True)
            inputs.append(tensor)
        outputs = [
            httpclient.InferRequestedOutput(n, binary_data=True) for n in ("arrest_probability", "arrest")
        ]
        result = client.infer(
            MODEL, inputs, outputs=outputs, parameters={"content_type": "pd"}, request_id="tc-1"
        )
        np.testing.assert_allclose(
            result.as_numpy("arrest_probability"), EXPECTED["arrest_probability"], rtol=0, atol=1e-9
        )
        assert result.as_numpy("arrest").tolist() == EXPECTED["arrest"]
        assert result.get_response()["model_version"] == "golden-1"
    finally:
        client.close()


def test_v1_rows(stack: Stack) -> None:
    url = f"{stack.golden.url}/v1/models/{MODEL}:predict"
    r = stack.golden.session.post(url, json={"instances": golden_rows()})
    assert r.status_code == 200, r.text
    body = r.json()
    np.testing.assert_allclose(body["predictions"], EXPECTED["arrest_probability"], rtol=0, atol=1e-9)
    assert body["arrest"] == EXPECTED["arrest"]
    assert body["model_version"] == r.headers["x-model-version"] == "golden-1"


def test_metadata(stack: Stack) -> None:
    meta = stack.golden.session.get(f"{stack.golden.url}/v2/models/{MODEL}").json()
    assert meta["name"] == MODEL
    assert [i["name"] for i in meta["inputs"]][:3] == ["date", "iucr", "primary_type"]
    assert {o["name"]: o["datatype"] for o in meta["outputs"]} == {
        "arrest_probability": "FP64",
        "arrest": "BOOL",
    }
    # The project's metadata route answers ahead of KServe's own: the served version is named.
    assert meta["versions"] == ["golden-1"]
    assert meta["parameters"]["champion_version"] == "golden-1"
    missing = stack.golden.session.get(f"{stack.golden.url}/v2/models/no-such-model")
    assert missing.status_code == 404, missing.text
    assert "no-such-model" in missing.json()["error"]


def _edit(name: str, **changes: Any) -> dict[str, Any]:
    body = golden_request()
    for item in body["inputs"]:
        if item["name"] == name:
            item.update(changes)
    return body


def _drop(name: str) -> dict[str, Any]:
    body = golden_request()
    body["inputs"] = [i for i in body["inputs"] if i["name"] != name]
    return body


def _with(**top: Any) -> dict[str, Any]:
    body = golden_request()
    for key, value in top.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return body


BAD: list[tuple[str, Any, str]] = [
    ("missing date", _drop("date"), "date"),
    ("missing primary_type", _drop("primary_type"), "primary_type"),
    ("missing iucr", _drop("iucr"), "iucr"),
    ("latitude as BOOL", _edit("latitude", datatype="BOOL", data=[True] * 6), "latitude"),
    ("domestic as FP64", _edit("domestic", datatype="FP64", data=[1.0] * 6), "domestic"),
    ("shapes disagree", _edit("ward", shape=[5], data=[1] * 5), "ward"),
    ("shape vs data", _edit("ward", shape=[6], data=[1, 2]), "ward"),
    ("unparsable date", _edit("date", data=["2017-13-45T99:00:00"] * 6), "date"),
    ("no inputs", _with(inputs=[]), "inputs"),
    (
        "zero rows",
        _with(inputs=[{**i, "shape": [0], "data": []} for i in golden_request()["inputs"]]),
        "zero",
    ),
    ("no content_type", _with(parameters=None), "content_type"),
    ("content_type np", _with(parameters={"content_type": "np"}), "content_type"),
    ("empty object", {}, "inputs"),
    ("not JSON", b"{oops", "JSON"),
    ("empty body", b"", "empty"),
]


@pytest.mark.parametrize(("body", "needle"), [(b, n) for _, b, n in BAD], ids=[i for i, _, _ in BAD])
def test_bad_input_is_400_naming_the_field(stack: Stack, body: Any, needle: str) -> None:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = stack.golden.session.post(stack.golden.infer_url, data=data, headers=JSON)
    assert r.status_code == 400, r.text
    assert needle in r.json()["error"]
    assert "Traceback" not in r.text


def test_bad_v1_input_is_400(stack: Stack) -> None:
    url = f"{stack.golden.url}/v1/models/{MODEL}:predict"
    rows = golden_rows()
    rows[1]["latitude"] = True
    r = stack.golden.session.post(url, json={"instances": rows})
    assert r.status_code == 400
    assert "latitude" in r.json()["error"]
    r = stack.golden.session.post(url, json={"instances": [{"date": "2017-01-01T00:00:00"}]})
    assert r.status_code == 400
    assert "primary_type" in r.json()["error"]


def test_unknown_categories_extra_fields_and_missing_coordinates_still_score(stack: Stack) -> None:
    rows = [
        {
            "date": "2017-05-05T05:05:00",
            "primary_type": "NEW TYPE",
            "iucr": "9999",
            "location_description": "MARS",
        },
        {"date": "2017-05-05T05:05:00", "primary_type": "THEFT", "iucr": "0820", "whatever": [1, 2]},
    ]
    r = stack.golden.session.post(f"{stack.golden.url}/v1/models/{MODEL}:predict", json={"instances": rows})
    assert r.status_code == 200, r.text
    assert all(0.0 <= p <= 1.0 for p in r.json()["predictions"])


def test_golden_server_metrics(stack: Stack) -> None:
    text = stack.golden.metrics()
    assert (
        'arrest_server_requests_total{model_version="golden-1",outcome="ok",protocol="v2",role="champion"}'
        in text
    )
    assert 'outcome="invalid"' in text
    assert (
        'arrest_server_request_duration_seconds_bucket{le="0.05",model_version="golden-1",role="champion"}'
        in text
    )
    assert 'arrest_server_predicted_probability_bucket{le="0.1",model_version="golden-1"}' in text
    assert 'arrest_server_model_info{model_version="golden-1",role="champion"} 1.0' in text


def test_access_log_has_one_json_line_per_request(stack: Stack) -> None:
    lines = [
        json.loads(line) for line in stack.golden.output().splitlines() if '"arrest_server.access"' in line
    ]
    golden = [line for line in lines if line["request_id"] == "golden-1" and line["status"] == 200]
    assert golden
    assert golden[0]["rows"] == 6
    assert golden[0]["model_version"] == "golden-1"
    assert {"request_id", "model_version", "role", "rows", "latency_ms", "status"} <= set(golden[0])
    assert any(line["status"] == 400 and "error" in line for line in lines)
    assert "Traceback" not in stack.golden.output()  # client errors are logged as one line


def test_no_champion_is_a_clear_error(stack: Stack) -> None:
    code = stack.no_champion.wait(timeout=120)
    out = stack.no_champion.output()
    assert code == 1
    assert "make pipeline-run" in out
    assert "Traceback" not in out
    assert not (stack.data_dir.parent / "empty").exists()  # the server wrote nothing: no state, no registry


# ------------------------------------------------------------------------------------------------------------
# The serving-state server: champion + challenger, canary, rollback, promotion under load
# ------------------------------------------------------------------------------------------------------------


def _settings(stack: Stack) -> Any:
    from chicago_arrest.core.settings import Settings

    return Settings(data_dir=stack.data_dir)


def _release(stack: Stack) -> Any:
    from chicago_arrest.release.ops import open_release

    return open_release("local", settings=_settings(stack))


def _ask(
    server: Server, request_id: str | None, session: requests.Session | None = None
) -> requests.Response:
    return (session or server.session).post(server.infer_url, data=single_row_body(request_id), headers=JSON)


def test_without_a_state_file_the_registry_aliases_serve_and_nothing_is_written(stack: Stack) -> None:
    assert not _settings(stack).serving_config_path.exists()
    versions = {_ask(stack.state, f"warm-{i}").headers["x-model-version"] for i in range(10)}
    assert versions == {stack.versions["champion"]}
    report = _release(stack).status()
    assert report["serving"] is None
    assert report["registry"]["champion"] == stack.versions["champion"]
    assert report["registry"]["challenger"] == stack.versions["challenger"]


def test_canary_split_is_ten_percent_and_sticky(stack: Stack) -> None:
    """2,000 requests with distinct seeded ids: 10 % ± 3 to the challenger, exactly the ids whose bucket < 10."""
    from arrest_server.router import bucket

    champion, challenger = stack.versions["champion"], stack.versions["challenger"]
    assert (
        _release(stack).canary(10).message()
        == f"local serving: champion {champion} (90%), challenger {challenger} (10%)"
    )
    stack.state.wait_for("arrest_server_canary_percent 10.0")

    rng = random.Random(2017)
    ids = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(2_000)]
    local = threading.local()

    def call(request_id: str) -> tuple[str, str, str]:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        r = _ask(stack.state, request_id, local.session)
        assert r.status_code == 200, r.text
        assert r.json()["model_version"] == r.headers["x-model-version"]
        return request_id, r.headers["x-model-version"], r.headers["x-model-role"]

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(call, ids))
    roles = Counter(role for _, _, role in results)
    share = roles["challenger"] / len(ids)
    assert 0.07 <= share <= 0.13, roles
    for request_id, version, role in results:
        assert role == ("challenger" if bucket(request_id) < 10 else "champion")
        assert version == (challenger if role == "challenger" else champion)
    # The same id always lands on the same version (body id or x-request-id header).
    sticky = next(i for i, _, role in results if role == "challenger")
    assert {_ask(stack.state, sticky).headers["x-model-version"] for _ in range(5)} == {challenger}
    by_header = {
        stack.state.session.post(
            stack.state.infer_url, data=single_row_body(None), headers={**JSON, "x-request-id": sticky}
        ).headers["x-model-version"]
        for _ in range(5)
    }
    assert by_header == {challenger}


def test_cli_canary_and_rollback_while_serving(stack: Stack) -> None:
    env = child_env(ARREST_DATA_DIR=str(stack.data_dir))

    def cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "chicago_arrest.cli", "serving", *args],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "(50%)" in cli("canary", "--percent", "50", "--target", "local")
    stack.state.wait_for("arrest_server_canary_percent 50.0")
    roles = Counter(_ask(stack.state, f"cli-{i}").headers["x-model-role"] for i in range(40))
    assert roles["challenger"] > 0
    assert roles["champion"] > 0

    _release(stack).rollback()
    stack.state.wait_for("arrest_server_canary_percent 0.0")
    assert {_ask(stack.state, f"cli-{i}").headers["x-model-role"] for i in range(40)} == {"champion"}
    status = json.loads(cli("status", "--json"))
    assert status["serving"]["canary_percent"] == 0
    assert status["registry"]["champion"] == stack.versions["champion"]


def test_promotion_under_load_drops_no_request(stack: Stack) -> None:
    from chicago_arrest.core.names import CHAMPION

    old, new = stack.versions["champion"], stack.versions["challenger"]
    release = _release(stack)
    release.canary(10)
    stack.state.wait_for("arrest_server_canary_percent 10.0")

    stop = threading.Event()
    results: list[tuple[float, int, str, str]] = []
    lock = threading.Lock()

    def fire(worker: int) -> None:
        session = requests.Session()
        i = 0
        while not stop.is_set():
            i += 1
            try:
                r = _ask(stack.state, f"load-{worker}-{i}", session)
                item = (time.monotonic(), r.status_code, r.headers.get("x-model-version", ""), r.text[:200])
            except requests.RequestException as exc:  # a dropped connection counts as a failure
                item = (time.monotonic(), 0, "", repr(exc))
            with lock:
                results.append(item)

    threads = [threading.Thread(target=fire, args=(w,)) for w in range(3)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.5)
        promoted = release.promote()
        stack.state.wait_for(
            f'arrest_server_model_info{{model_version="{new}",role="champion"}} 1.0',
            "arrest_server_canary_percent 0.0",
        )
        promoted_at = time.monotonic()
        time.sleep(1.5)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    failures = [r for r in results if r[1] != 200]
    assert not failures, failures[:5]
    assert len(results) > 20
    assert {v for _, _, v, _ in results} >= {old, new}
    assert {v for at, _, v, _ in results if at > promoted_at + 0.5} == {new}
    # Registry first, traffic last (the release messages' middle lines belong to release.ops' own tests).
    assert promoted.lines[0].startswith("served traffic: no comparison")  # nothing monitored here (issue 26)
    assert promoted.lines[1].startswith(f"registry: champion alias -> version {new} (was {old})")
    assert promoted.lines[-1] == f"local serving: champion {new} (100%)"
    assert release.aliases.get(CHAMPION) == new
    assert release.promote().lines[0].startswith("nothing left to do")


def test_state_server_metrics_have_both_versions(stack: Stack) -> None:
    text = stack.state.metrics()
    for version in stack.versions.values():
        assert f'arrest_server_requests_total{{model_version="{version}",outcome="ok",protocol="v2"' in text
        assert f'arrest_server_request_duration_seconds_count{{model_version="{version}"' in text
        assert f'arrest_server_predicted_probability_count{{model_version="{version}"}}' in text
    assert 'role="challenger"' in text
    assert 'arrest_server_state_reloads_total{outcome="ok"}' in text
