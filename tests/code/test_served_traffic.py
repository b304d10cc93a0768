"""Served traffic (issue 26): both logs of what was served, the payload sink, labels joined later, per-version
realised metrics, champion against challenger.

The cluster's log format is read from fixtures derived from the upstream writer: KServe v0.20.0
``pkg/logger/handler.go`` / ``pkg/logger/worker.go`` with cloudevents sdk-go v2.16.2 ``v2/protocol/http``
(``tests/data/kserve_logger/README.md``; :mod:`tests.kserve_logger` builds more of them the same way).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import json
import random
import re
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from chicago_arrest.core.schema import MODEL_INPUT_COLUMNS
from chicago_arrest.core.store import LocalStore
from chicago_arrest.model.evaluate import bootstrap_intervals, expected_calibration_error
from chicago_arrest.monitoring import realised as rl
from chicago_arrest.monitoring.drift import build_profile, current_shares, prediction_shares
from chicago_arrest.monitoring.served_log import (
    EVENTS_PREFIX,
    load_served,
    read_events,
    read_request_log,
    request_log_dir,
)
from chicago_arrest.reports.monitoring import comparison_lines, served_sections
from tests.kserve_logger import FIXTURES, REQUEST, RESPONSE, agent_post, go_time, read_http

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden"


def post_all(sink: Any, posts: list[tuple[dict[str, str], bytes]]) -> list[int]:
    """POST each (headers, body) to the sink app the way the agent does; the status codes."""

    async def go() -> list[int]:
        transport = httpx.ASGITransport(app=sink)
        async with httpx.AsyncClient(transport=transport, base_url="http://payload-sink") as client:
            return [(await client.post("/", headers=h, content=b)).status_code for h, b in posts]

    return asyncio.run(go())


def make_sink(store: Any, **settings: Any) -> Any:
    from arrest_server.payload_sink import PayloadSink, SinkSettings

    return PayloadSink(store, SinkSettings(flush_s=3600, **settings), writer="sink-0")


# ------------------------------------------------------------------------------------------------------------
# The upstream format
# ------------------------------------------------------------------------------------------------------------


def test_fixtures_are_what_the_agent_sends_and_the_helper_builds_the_same(tmp_path: Path) -> None:
    for name, kind in (("request.http", REQUEST), ("response.http", RESPONSE)):
        method, target, headers, body = read_http(FIXTURES / name)
        assert (method, target) == ("POST", "/")
        assert headers["Ce-Type"] == kind
        assert int(headers["Content-Length"]) == len(body)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z", headers["Ce-Time"])
        built, _ = agent_post(kind, headers["Ce-Id"], body, when=dt.datetime(2026, 9, 14, 12, tzinfo=dt.UTC))
        transport = {"Host", "User-Agent", "Accept-Encoding"}  # written by Go's net/http, not the logger
        assert set(built) == set(headers) - transport
        timeless = {k: v for k, v in built.items() if not k.endswith(("Time", "time"))}
        assert timeless == {k: headers[k] for k in timeless}
    assert go_time(dt.datetime(2026, 9, 14, 12, 0, 0, 123450, tzinfo=dt.UTC)) == "2026-09-14T12:00:00.12345Z"


def test_the_sink_stores_the_fixture_events_and_the_monitor_reads_the_records(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "served")
    sink = make_sink(store)
    posts = [read_http(FIXTURES / name)[2:] for name in ("response.http", "request.http")]  # any order
    assert post_all(sink, [(h, b) for h, b in posts]) == [200, 200]
    sink.close()
    (key,) = store.list_keys(EVENTS_PREFIX)
    assert re.fullmatch(r"events/\d{4}-\d\d-\d\d/sink-0-\d{8}T\d{12}-0\.jsonl\.gz", key)
    lines = [json.loads(x) for x in gzip.decompress(store.get_bytes(key)).splitlines()]
    assert [e["type"] for e in lines] == [RESPONSE, REQUEST]
    assert lines[1]["inferenceservicename"] == "arrest-predictor"
    assert lines[1]["data"]["inputs"][0]["name"] == "id"  # the body, as JSON (not base64)
    records, problems = read_events(store)
    assert problems == []
    assert records["id"].tolist() == ["11165812", "11165813"]
    assert records["case_number"].tolist() == ["JA546713", "JA546714"]
    assert records["arrest_probability"].tolist() == [0.1843126702, 0.9912837341]
    assert records["model_version"].tolist() == ["1", "1"]
    assert records["role"].isna().all()  # one version per revision: the registry says which role
    assert records["request_id"].tolist() == ["r-1", "r-1"]
    assert records["logged_at"].iloc[0] == pd.Timestamp("2026-09-14T12:00:00.123456789Z")
    assert str(records["date"].dtype) == "datetime64[ns]"
    assert records["primary_type"].tolist() == ["THEFT", "NARCOTICS"]


def test_the_sink_refuses_what_is_not_an_event_and_keeps_events_while_the_store_is_down(
    tmp_path: Path,
) -> None:
    class Down:
        def __init__(self) -> None:
            self.up = False
            self.inner = LocalStore(tmp_path / "served")

        def put_bytes(self, key: str, data: bytes) -> None:
            if not self.up:
                raise ConnectionError("MinIO is down")
            self.inner.put_bytes(key, data)

        def uri(self, key: str = "") -> str:
            return self.inner.uri(key)

    store = Down()
    sink = make_sink(store, max_events=3)
    _, _, headers, body = read_http(FIXTURES / "request.http")
    events = [({**headers, "Ce-Id": f"e{i}"}, body) for i in range(5)]
    assert post_all(sink, [({"Content-Type": "application/json"}, b"{}"), *events]) == [400] + [200] * 5
    assert sink.flush() == 0  # kept for the next write, the oldest beyond max_events dropped
    assert sink.dropped == 2
    store.up = True
    assert sink.flush() == 3
    (key,) = store.inner.list_keys(EVENTS_PREFIX)
    kept = [json.loads(x)["id"] for x in gzip.decompress(store.inner.get_bytes(key)).splitlines()]
    assert kept == ["e2", "e3", "e4"]
    sink.close()


# ------------------------------------------------------------------------------------------------------------
# One set of requests, logged both ways, gives the same profile and the same realised metrics
# ------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served_both_ways(tmp_path_factory: pytest.TempPathFactory, crimes: pd.DataFrame) -> dict[str, Any]:
    """Requests with ids through an in-process predictor (champion 7, challenger 8 at 50 %) writing the request
    log, and the same requests and answers through the payload sink as KServe's agent posts them."""
    from arrest_server.loading import load_model
    from arrest_server.model import ArrestPredictor
    from arrest_server.request_log import RequestLog
    from arrest_server.router import Deployment, DeploymentHolder
    from arrest_server.settings import ServerSettings
    from kserve.protocol.infer_type import InferRequest
    from kserve.protocol.rest.v2_datamodels import InferenceRequest

    from chicago_arrest.core.settings import Settings
    from chicago_arrest.registry.state import ModelRef

    root = tmp_path_factory.mktemp("served")
    predictor = ArrestPredictor(ServerSettings(), library_settings=Settings(data_dir=root / "data"))
    champion = load_model(ModelRef("7", str(GOLDEN / "model")))
    challenger = load_model(ModelRef("8", str(GOLDEN / "model")))
    predictor.holder = DeploymentHolder(Deployment(champion, challenger, 50))
    predictor.ready = True
    predictor.request_log = RequestLog(request_log_dir(root / "data"))
    records = crimes.iloc[:600].reset_index(drop=True)
    fields = [*MODEL_INPUT_COLUMNS, "id", "case_number"]
    rng = random.Random(5)
    posts: list[tuple[dict[str, str], bytes]] = []
    start, i, n = dt.datetime(2026, 9, 14, 12, tzinfo=dt.UTC), 0, 0
    while i < len(records):
        size = rng.choice([1, 1, 2, 5])
        chunk = records.iloc[i : i + size]
        i += size
        n += 1
        rows = [
            {f: (None if pd.isna(v) else v) for f, v in row.items() if f in fields}
            for row in chunk.to_dict("records")
        ]
        if n % 7 == 0:  # a report without an id: served and profiled, never joined
            for row in rows:
                row.pop("id", None)
        if n % 3 == 0:  # V1
            body: dict[str, Any] = {"instances": rows}
            answer = asyncio.run(predictor.predict(body, {"x-request-id": f"q{n}"}, {}))
        else:  # V2, every field as text (what a client with the Socrata export sends)
            names = sorted({k for r in rows for k in r})
            body = {
                "id": f"q{n}",
                "parameters": {"content_type": "pd"},
                "inputs": [
                    {"name": k, "shape": [len(rows)], "datatype": "BYTES", "data": [r.get(k) for r in rows]}
                    for k in names
                ],
            }
            request = InferRequest.from_inference_request(
                InferenceRequest.model_validate(body), predictor.name
            )
            answer = asyncio.run(predictor.predict(request, {}, {})).to_rest()[0]
        when = start + dt.timedelta(seconds=n)
        request_post = agent_post(REQUEST, f"ce-{n}", json.dumps(body).encode(), when=when)
        response_post = agent_post(RESPONSE, f"ce-{n}", json.dumps(answer).encode(), when=when)
        posts += [response_post, request_post] if n % 2 else [request_post, response_post]
    predictor.request_log.close()
    store = LocalStore(root / "data" / "store" / "inference-logs")
    sink = make_sink(store, flush_events=100)
    assert set(post_all(sink, posts)) == {200}
    sink.close()
    _frames, problems = read_request_log(request_log_dir(root / "data"))
    assert problems == []
    cluster, problems = read_events(store)
    assert problems == []
    return {
        "local": load_served(root / "data").records,
        "cluster": cluster,
        "records": records,
        "store": store,
    }


def test_same_requests_give_the_same_profile_from_either_log(
    served_both_ways: dict[str, Any], crimes: pd.DataFrame
) -> None:
    local, cluster = served_both_ways["local"], served_both_ways["cluster"]
    assert len(local) == len(cluster) == 600
    local = local.sort_values("request_id", kind="stable").reset_index(drop=True)
    cluster = cluster.sort_values("request_id", kind="stable").reset_index(drop=True)
    assert local["request_id"].tolist() == cluster["request_id"].tolist()
    np.testing.assert_allclose(local["arrest_probability"], cluster["arrest_probability"], rtol=0, atol=1e-12)
    assert local["model_version"].tolist() == cluster["model_version"].tolist()
    assert local["id"].fillna("-").tolist() == cluster["id"].fillna("-").tolist()
    reference = crimes.iloc[2000:3000]
    profile = build_profile(reference, np.full(len(reference), 0.3), {})
    assert current_shares(profile, local) == current_shares(profile, cluster)
    assert prediction_shares(local["arrest_probability"]) == prediction_shares(cluster["arrest_probability"])
    labels = rl.labels_from_frame(served_both_ways["records"], "generated")
    by_local = rl.realised_by_version(rl.join_labels(rl.assign_roles(local, "7", "8"), labels)[0], 50)
    by_cluster = rl.realised_by_version(rl.join_labels(rl.assign_roles(cluster, "7", "8"), labels)[0], 50)
    assert set(by_local) == {"7", "8"}
    for version in by_local:
        for key in ("rows", "labelled_rows", "roc_auc", "pr_auc", "ece", "role"):
            assert by_local[version][key] == pytest.approx(by_cluster[version][key], abs=1e-12), (
                version,
                key,
            )


def test_realised_metrics_per_version_match_an_offline_computation(served_both_ways: dict[str, Any]) -> None:
    served, records = served_both_ways["local"], served_both_ways["records"]
    labels = rl.labels_from_frame(records, "generated")
    joined, coverage = rl.join_labels(rl.assign_roles(served, "7", "8"), labels)
    without_id = int(served["id"].isna().sum())
    assert without_id > 0
    assert coverage["without_id"] == without_id
    assert coverage["labelled_rows"] == 600 - without_id  # every id has a label; no id is never joined
    assert coverage["duplicate_ids"] == 0
    table = rl.realised_by_version(joined, min_labelled=50)
    truth = records.set_index(records["id"].astype(str))["arrest"].str.lower().eq("true")
    for version, entry in table.items():
        mine = served[(served["model_version"] == version) & served["id"].notna()]
        y = truth.loc[mine["id"].tolist()].to_numpy().astype(int)
        p = mine["arrest_probability"].to_numpy()
        assert entry["rows"] == int((served["model_version"] == version).sum())
        assert entry["labelled_rows"] == len(y)
        assert entry["role"] == ("champion" if version == "7" else "challenger")
        assert entry["roc_auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
        assert entry["pr_auc"] == pytest.approx(average_precision_score(y, p), abs=1e-12)
        assert entry["ece"] == pytest.approx(expected_calibration_error(y, p), abs=1e-12)
        assert entry["roc_auc_se"] == pytest.approx(bootstrap_intervals(y, p)["roc_auc_se"], abs=1e-12)
        assert entry["roc_auc_ci_low"] < entry["roc_auc"] < entry["roc_auc_ci_high"]
    pending = rl.realised_by_version(joined, min_labelled=10_000)
    assert all(e["roc_auc"] is None and "labelled <" in e["pending"] for e in pending.values())


# ------------------------------------------------------------------------------------------------------------
# Bad or late input
# ------------------------------------------------------------------------------------------------------------


def served_frame(
    ids: list[Any], versions: list[str], probabilities: list[float], minutes: list[int]
) -> pd.DataFrame:
    start = pd.Timestamp("2026-09-14T12:00:00Z")
    return pd.DataFrame(
        {
            "id": pd.array([None if i is None else str(i) for i in ids], dtype="string"),
            "case_number": pd.array([None] * len(ids), dtype="string"),
            "date": pd.Timestamp("2017-12-01 10:00"),
            "arrest_probability": probabilities,
            "model_version": pd.array(versions, dtype="string"),
            "role": pd.array([None] * len(ids), dtype="string"),
            "request_id": pd.array([f"r{k}" for k in range(len(ids))], dtype="string"),
            "logged_at": [start + pd.Timedelta(minutes=m) for m in minutes],
        }
    )


def test_a_repeated_id_counts_once_and_a_record_without_id_is_never_joined() -> None:
    served = served_frame(
        [1, 2, 1, None, 3], ["1", "1", "2", "1", "2"], [0.9, 0.1, 0.5, 0.7, 0.2], [0, 1, 2, 3, 4]
    )
    labels = pd.Series([True, False, True], index=["1", "2", "3"])
    joined, coverage = rl.join_labels(served, labels, now=dt.datetime(2026, 9, 15, 12, tzinfo=dt.UTC))
    assert coverage["served_rows"] == 5
    assert coverage["rows"] == 4
    assert coverage["duplicate_ids"] == 1
    assert coverage["without_id"] == 1
    assert coverage["labelled_rows"] == 3
    assert coverage["unlabelled_rows"] == 1
    assert coverage["labelled_age_days"]["max"] == pytest.approx(1.0, abs=0.01)
    first = joined[joined["id"] == "1"]
    assert first["model_version"].tolist() == ["1"]
    assert first["arrest_probability"].tolist() == [0.9]
    assert joined["label"].isna().tolist() == [False, False, True, False]


def test_an_unreadable_object_and_broken_events_are_reported_and_skipped(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "served")
    sink = make_sink(store)
    _, _, req_headers, req_body = read_http(FIXTURES / "request.http")
    _, _, res_headers, res_body = read_http(FIXTURES / "response.http")
    lonely = {**req_headers, "Ce-Id": "no-answer"}  # answered 4xx: no response event
    garbage = {**req_headers, "Ce-Id": "garbage"}
    garbage_answer = {**res_headers, "Ce-Id": "garbage"}
    posts = [(req_headers, req_body), (res_headers, res_body), (res_headers, res_body), (lonely, req_body)]
    posts += [(garbage, b'{"instances": "nope"}'), (garbage_answer, res_body)]
    post_all(sink, posts)
    sink.close()
    store.put_bytes("events/2026-09-14/broken.jsonl.gz", b"not gzip at all")
    store.put_bytes("events/2026-09-14/half.jsonl.gz", gzip.compress(b'{"id": "x", "type": "t"}\nnot json\n'))
    records, problems = read_events(store)
    assert len(records) == 2  # the fixture's two records, once
    text = "\n".join(problems)
    assert "logger object events/2026-09-14/broken.jsonl.gz skipped: not readable" in text
    assert "1 logger line(s) skipped" in text
    assert "1 logged request(s) skipped: no response event" in text
    assert "1 logged request(s) skipped: the body is not a JSON V2" in text
    assert "1 duplicate event(s)" in text


def test_no_served_record_anywhere_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no served records"):
        load_served(tmp_path, LocalStore(tmp_path / "served"))


# ------------------------------------------------------------------------------------------------------------
# Champion against challenger
# ------------------------------------------------------------------------------------------------------------


def canary(n: int, worse_by: float, seed: int = 0) -> pd.DataFrame:
    """Labelled served records: champion 1 all along, challenger 2 on 30 % from minute 100 on."""
    rng = np.random.default_rng(seed)
    minutes = np.arange(n)
    challenger = (minutes >= 100) & (rng.random(n) < 0.3)
    challenger[100] = True
    y = rng.random(n) < 0.3
    signal = np.where(y, 1.0, -1.0) * np.where(challenger, 1.0 - worse_by, 1.0)
    p = 1 / (1 + np.exp(-(signal + rng.normal(0, 1.2, n))))
    served = served_frame(list(range(n)), ["2" if c else "1" for c in challenger], list(p), list(minutes))
    served["label"] = pd.array(y, dtype="boolean")
    return served


def test_a_worse_challenger_is_beyond_the_noise_and_the_comparison_uses_the_same_period() -> None:
    worse = rl.compare(canary(4000, worse_by=0.8), "1", "2", min_labelled=100)
    assert worse is not None
    assert worse["verdict"] == "worse"
    assert worse["period"][0] == "2026-09-14T13:40:00+00:00"  # the challenger's first record (minute 100)
    assert worse["champion"]["rows"] < int(
        (canary(4000, 0.8)["model_version"] == "1").sum()
    )  # same period only
    diff = worse["difference"]
    assert diff["roc_auc"] < -rl.NOISE_Z * diff["roc_auc_se"]
    assert rl.measurably_worse(worse)
    lines = comparison_lines(worse)
    assert "measurably worse" in lines[-1]
    assert lines[1].startswith("  champion   v1: ")
    assert "ROC-AUC" in lines[3]
    assert "(beyond the noise)" in lines[3]
    titles = [
        title for title, _ in served_sections({"labels": {}, "realised_served": {}, "comparison": worse})
    ]
    assert titles == ["Served traffic: labels known now", "Champion against challenger, same period"]
    assert rl.from_tag(rl.to_tag(worse)) == json.loads(rl.to_tag(worse))
    assert rl.measurably_worse(rl.from_tag(rl.to_tag(worse)))
    same = rl.compare(
        canary(4000, worse_by=0.0, seed=1), "1", "2", min_labelled=100
    )  # seed 0: -2.1 SE by chance
    assert same is not None
    assert same["verdict"] == "within noise"
    assert not rl.measurably_worse(same)
    few = rl.compare(canary(400, worse_by=0.8), "1", "2", min_labelled=200)
    assert few is not None
    assert few["verdict"] == "pending"
    assert rl.compare(canary(400, 0.0), "1", "3") is None  # version 3 served nothing
