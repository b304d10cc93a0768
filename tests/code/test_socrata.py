"""Socrata client against a local HTTP stand-in: real sodapy, requests and urllib3 ``Retry`` (no network)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pandas as pd
import pytest
from pydantic import SecretStr
from sodapy import Socrata

from chicago_arrest.core.schema import RAW_COLUMNS
from chicago_arrest.core.settings import Settings
from chicago_arrest.data.socrata import (
    STATION_COLUMNS,
    SocrataClient,
    SocrataError,
    records_to_frame,
    retrying_adapter,
    soql_window,
)

CANNED = Path(__file__).resolve().parents[1] / "data" / "socrata"
#: A reply that drops the connection without answering, and one that answers too late (a read time-out).
DROP, HANG = "drop", "hang"


def canned(name: str) -> Any:
    return json.loads((CANNED / name).read_text())


Reply = tuple[int, Any] | tuple[int, Any, dict[str, str]] | str


class StandIn(ThreadingHTTPServer):
    """Answers each GET with the next reply: (status, JSON body[, headers]), DROP or HANG."""

    daemon_threads = True

    def __init__(self, replies: list[Reply]) -> None:
        self.replies = list(replies)
        self.requests: list[tuple[str, Any]] = []
        self.released = threading.Event()
        super().__init__(("127.0.0.1", 0), Handler)

    def params(self, i: int) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(urlsplit(self.requests[i][0]).query).items()}

    def paths(self) -> list[str]:
        return [urlsplit(path).path for path, _ in self.requests]


class Handler(BaseHTTPRequestHandler):
    server: StandIn

    def do_GET(self) -> None:
        self.server.requests.append((self.path, self.headers))  # case-insensitive
        reply = self.server.replies.pop(0) if self.server.replies else (500, {"message": "no reply left"})
        if reply == HANG:
            self.server.released.wait(2)
        if isinstance(reply, str):
            self.close_connection = True
            return
        status, body, *headers = reply
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers[0] if headers else {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """urllib3's back-off and Retry-After waits, recorded instead of slept.

    Only urllib3's view of the ``time`` module is replaced: patching ``time.sleep`` itself would also record the
    sleeps of other threads in the process (a request-log writer left by an earlier test did, once).
    """
    import time
    import types

    import urllib3.util.retry

    recorded: list[float] = []
    monkeypatch.setattr(
        urllib3.util.retry, "time", types.SimpleNamespace(sleep=recorded.append, time=time.time)
    )
    return recorded


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[StandIn] = []

    def start(
        replies: list[Reply], *, page_size: int = 3, retries: int = 5, **settings: Any
    ) -> tuple[SocrataClient, StandIn]:
        server = StandIn(replies)
        threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
        servers.append(server)
        cfg = Settings(socrata_page_size=page_size, socrata_max_retries=retries, **settings)
        token = cfg.socrata_app_token.get_secret_value() if cfg.socrata_app_token else None
        # What SocrataClient builds for https://data.cityofchicago.org, pointed at the stand-in.
        soda = Socrata(
            f"127.0.0.1:{server.server_address[1]}",
            token,
            session_adapter={"prefix": "http://", "adapter": retrying_adapter(cfg)},
            timeout=cfg.socrata_timeout_s,
        )
        return SocrataClient(cfg, client=soda), server

    yield start
    for server in servers:
        server.released.set()
        server.shutdown()
        server.server_close()


PAGES = [canned("crimes_page_1.json"), canned("crimes_page_2.json"), canned("crimes_page_3.json")]


def test_soql_window() -> None:
    assert soql_window(date(2017, 12, 1), date(2018, 1, 1)) == (
        "date >= '2017-12-01T00:00:00' AND date < '2018-01-01T00:00:00'"
    )


def test_paging_params_and_stop_at_short_page(serve: Any, sleeps: list[float]) -> None:
    client, server = serve([(200, p) for p in PAGES])
    frame = client.fetch_crimes(date(2017, 1, 1), date(2017, 2, 1))

    assert len(server.requests) == 3  # the third page is short: no fourth request
    assert server.replies == []
    assert sleeps == []
    assert server.paths() == ["/resource/ijzp-q8t2.json"] * 3
    for i, offset in enumerate(["0", "3", "6"]):
        assert server.params(i) == {
            "$where": "date >= '2017-01-01T00:00:00' AND date < '2017-02-01T00:00:00'",
            "$order": ":id",
            "$limit": "3",
            "$offset": offset,
        }
    assert "X-App-Token" not in server.requests[0][1]

    assert len(frame) == 7
    assert frame["id"].tolist() == [r["id"] for page in PAGES for r in page]
    # Raw fields in schema order, extras after; location and computed regions dropped.
    assert list(frame.columns) == [*RAW_COLUMNS, "new_field"]
    assert not any(c.startswith(":") or c == "location" for c in frame.columns)
    # Values as sent: text with leading zeros; JSON booleans as the export's lowercase text.
    assert frame["iucr"].tolist()[:3] == ["0486", "0820", "031A"]
    assert frame["district"].iloc[0] == "005"
    assert frame["beat"].iloc[0] == "0524"
    assert frame["arrest"].iloc[0] == "false"
    assert frame["domestic"].iloc[0] == "true"
    # Socrata omits null fields: missing there, missing here.
    assert pd.isna(frame["latitude"].iloc[-1])


def test_exact_multiple_of_page_size_ends_with_empty_page(serve: Any) -> None:
    client, server = serve([(200, PAGES[0]), (200, PAGES[1]), (200, [])])
    frame = client.fetch_crimes(date(2017, 1, 1), date(2017, 2, 1))
    assert len(frame) == 6
    assert [server.params(i)["$offset"] for i in range(3)] == ["0", "3", "6"]


def test_empty_window_gives_empty_frame_with_raw_columns(serve: Any) -> None:
    client, server = serve([(200, [])])
    frame = client.fetch_crimes(date(2030, 1, 1), date(2030, 2, 1))
    assert frame.empty
    assert list(frame.columns) == list(RAW_COLUMNS)
    assert len(server.requests) == 1


def test_app_token_is_sent_when_configured(serve: Any) -> None:
    client, server = serve([(200, [])], socrata_app_token=SecretStr("tok-123"))
    client.fetch_crimes(date(2017, 1, 1), date(2017, 2, 1))
    assert server.requests[0][1]["X-App-Token"] == "tok-123"
    assert "tok-123" not in repr(client)


def test_retries_on_429_5xx_dropped_connections_and_timeouts_then_succeeds(
    serve: Any, sleeps: list[float]
) -> None:
    replies: list[Reply] = [(429, {"message": "slow down"}), (503, {"message": "unavailable"}), DROP, HANG]
    client, server = serve([*replies, (200, PAGES[2])], socrata_timeout_s=1.0)
    frame = client.fetch_crimes(date(2017, 1, 1), date(2017, 2, 1))
    assert len(frame) == 1
    assert len(server.requests) == 5
    # Every retry asked for the same page.
    assert {server.params(i)["$offset"] for i in range(5)} == {"0"}
    # Exponential back-off with up to 1 s of jitter; the first retry is immediate.
    assert len(sleeps) == 3
    for k, delay in enumerate(sleeps, start=1):
        assert 2**k <= delay <= 2**k + 1


def test_retry_after_header_is_honoured(serve: Any, sleeps: list[float]) -> None:
    client, _ = serve([(429, {}, {"Retry-After": "7"}), (200, [])])
    client.fetch_crimes(date(2017, 1, 1), date(2017, 2, 1))
    assert sleeps == [7.0]


def test_backoff_is_capped_at_a_minute(serve: Any, sleeps: list[float]) -> None:
    client, _ = serve([*[(500, {})] * 8, (200, [])], retries=8)
    client.fetch_crimes(date(2017, 1, 1), date(2017, 2, 1))
    assert len(sleeps) == 7
    assert sleeps[-1] == 60.0


def test_gives_up_after_max_retries(serve: Any, sleeps: list[float]) -> None:
    client, server = serve([(503, {"message": "down"})] * 3, retries=2)
    with pytest.raises(SocrataError) as info:
        client.fetch_crimes(date(2017, 1, 1), date(2017, 2, 1))
    message = str(info.value)
    assert "after 3 attempt(s)" in message
    assert "503" in message
    assert "down" in message
    assert "ijzp-q8t2" in message
    assert len(server.requests) == 3
    assert len(sleeps) == 1


def test_gives_up_on_persistent_timeouts(serve: Any, sleeps: list[float]) -> None:
    client, server = serve([HANG, HANG], retries=1, socrata_timeout_s=0.5)
    with pytest.raises(SocrataError, match=r"after 2 attempt\(s\).*Timeout"):
        client.fetch_crimes(date(2017, 1, 1), date(2017, 2, 1))
    assert len(server.requests) == 2


def test_400_fails_at_once_with_the_server_message(serve: Any, sleeps: list[float]) -> None:
    client, server = serve([(400, canned("error_400.json")), (200, [])])
    with pytest.raises(SocrataError) as info:
        client.fetch_crimes(date(2017, 1, 1), date(2017, 2, 1))
    message = str(info.value)
    assert "HTTP 400" in message
    assert "not retrying" in message
    assert "Invalid SoQL query" in message
    assert "$where=date >= '2017-01-01T00:00:00'" in message
    assert len(server.requests) == 1
    assert sleeps == []


@pytest.mark.parametrize("status", [401, 403, 404])
def test_other_4xx_fail_at_once(serve: Any, status: int) -> None:
    client, server = serve([(status, {"message": "nope"})])
    with pytest.raises(SocrataError, match=f"HTTP {status}"):
        client.fetch_stations()
    assert len(server.requests) == 1


def test_failure_on_a_later_page_returns_nothing_partial(serve: Any) -> None:
    client, server = serve([(200, PAGES[0]), (400, {"message": "bad"})])
    with pytest.raises(SocrataError):
        client.fetch_crimes(date(2017, 1, 1), date(2017, 2, 1))
    assert len(server.requests) == 2


def test_fetch_stations(serve: Any) -> None:
    client, server = serve([(200, canned("stations.json"))], page_size=50)
    frame = client.fetch_stations()
    assert server.paths() == ["/resource/z8bn-74gv.json"]
    assert "$where" not in server.params(0)
    assert server.params(0)["$order"] == ":id"
    assert list(frame.columns) == list(STATION_COLUMNS)
    assert frame["district"].tolist() == ["1", "Headquarters"]
    assert (
        frame["website"].iloc[0] == "http://home.chicagopolice.org/community/districts/1st-district-central/"
    )
    assert pd.isna(frame["phone"].iloc[1])


def test_default_client_mounts_the_retrying_adapter_for_https() -> None:
    client = SocrataClient(Settings(socrata_max_retries=4, socrata_timeout_s=9.0))
    soda = client._soda()
    adapter = soda.session.get_adapter("https://data.cityofchicago.org/resource/x.json")
    assert adapter.max_retries.total == 4
    assert 429 in adapter.max_retries.status_forcelist
    assert soda.timeout == 9.0
    client.close()


def test_injected_sodapy_like_client() -> None:
    calls: list[tuple[str, dict[str, Any]]] = []

    class Fake:
        def get(self, dataset_identifier: str, **kwargs: Any) -> Any:
            calls.append((dataset_identifier, kwargs))
            return PAGES[2]

    client = SocrataClient(Settings(socrata_page_size=10), client=Fake())
    frame = client.fetch_crimes(date(2017, 1, 1), date(2017, 2, 1))
    assert len(frame) == 1
    assert calls == [
        (
            "ijzp-q8t2",
            {
                "order": ":id",
                "limit": 10,
                "offset": 0,
                "where": "date >= '2017-01-01T00:00:00' AND date < '2017-02-01T00:00:00'",
            },
        )
    ]
    assert client.source == "socrata:https://data.cityofchicago.org/resource/ijzp-q8t2"


def test_unexpected_response_type_is_an_error() -> None:
    class Fake:
        def get(self, dataset_identifier: str, **kwargs: Any) -> Any:
            return "<html>maintenance</html>"

    with pytest.raises(SocrataError, match="expected a JSON array"):
        SocrataClient(Settings(), client=Fake()).fetch_stations()


def test_progress_is_logged(serve: Any, caplog: pytest.LogCaptureFixture) -> None:
    client, _ = serve([(200, p) for p in PAGES])
    with caplog.at_level("INFO", logger="chicago_arrest.data.socrata"):
        client.fetch_crimes(date(2017, 1, 1), date(2017, 2, 1))
    lines = [r.getMessage() for r in caplog.records if r.name == "chicago_arrest.data.socrata"]
    assert lines == [
        "crimes 2017-01-01..2017-02-01: page 1, 3 rows so far",
        "crimes 2017-01-01..2017-02-01: page 2, 6 rows so far",
        "crimes 2017-01-01..2017-02-01: page 3, 7 rows so far",
    ]


def test_invalid_window(serve: Any) -> None:
    client, server = serve([])
    with pytest.raises(ValueError, match="empty window"):
        client.fetch_crimes(date(2017, 2, 1), date(2017, 2, 1))
    assert server.requests == []


def test_records_to_frame_orders_and_flattens() -> None:
    frame = records_to_frame(
        [
            {"zzz": "1", "date": "2017-01-01T00:00:00.000", "id": "5", ":id": "row-1", "location": {"a": 1}},
            {"id": "6", "nested": {"k": [1, 2]}, "arrest": True},
        ]
    )
    assert list(frame.columns) == ["id", "date", "arrest", "zzz", "nested"]
    assert frame["nested"].iloc[1] == '{"k": [1, 2]}'
    assert frame["arrest"].iloc[1] == "true"
    assert pd.isna(frame["date"].iloc[1])
