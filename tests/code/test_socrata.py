"""Socrata client on canned responses: a requests adapter mounted on sodapy's own session (no network)."""

from __future__ import annotations

import json
import time
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pandas as pd
import pytest
import requests
from pydantic import SecretStr
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from chicago_arrest.schema import RAW_COLUMNS
from chicago_arrest.settings import Settings
from chicago_arrest.socrata import (
    STATION_COLUMNS,
    SocrataClient,
    SocrataError,
    records_to_frame,
    soql_window,
)

CANNED = Path(__file__).resolve().parents[1] / "data" / "socrata"


def canned(name: str) -> Any:
    return json.loads((CANNED / name).read_text())


Reply = tuple[int, Any] | tuple[int, Any, dict[str, str]] | BaseException


class CannedAdapter(BaseAdapter):
    """Answers each request with the next canned reply: (status, JSON body[, headers]) or an exception."""

    def __init__(self, replies: list[Reply]) -> None:
        super().__init__()
        self.replies = list(replies)
        self.requests: list[requests.PreparedRequest] = []
        self.timeouts: list[Any] = []

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None, **_: Any
    ) -> requests.Response:
        self.requests.append(request)
        self.timeouts.append(timeout)
        if not self.replies:
            raise AssertionError(f"unexpected request {request.url}")
        reply = self.replies.pop(0)
        if isinstance(reply, BaseException):
            raise reply
        status, body, *rest = reply
        response = requests.Response()
        response.status_code = status
        response.reason = {200: "OK", 400: "Bad Request", 429: "Too Many Requests"}.get(status, "Error")
        response._content = json.dumps(body).encode()
        response.headers = CaseInsensitiveDict({"Content-Type": "application/json;charset=utf-8"})
        if rest:
            response.headers.update(rest[0])
        response.url = str(request.url)
        response.request = request
        return response

    def close(self) -> None:
        pass

    def params(self, i: int) -> dict[str, str]:
        query = parse_qs(urlsplit(str(self.requests[i].url)).query)
        return {k: v[0] for k, v in query.items()}


def make_client(
    replies: list[Reply], *, page_size: int = 3, retries: int = 5, **settings: Any
) -> tuple[SocrataClient, CannedAdapter, list[float]]:
    adapter = CannedAdapter(replies)
    sleeps: list[float] = []
    cfg = Settings(socrata_page_size=page_size, socrata_max_retries=retries, **settings)
    client = SocrataClient(cfg, session_adapter=adapter, sleep=sleeps.append, seed=1)
    return client, adapter, sleeps


PAGES = [canned("crimes_page_1.json"), canned("crimes_page_2.json"), canned("crimes_page_3.json")]


def test_soql_window() -> None:
    assert soql_window(date(2017, 12, 1), date(2018, 1, 1)) == (
        "date >= '2017-12-01T00:00:00' AND date < '2018-01-01T00:00:00'"
    )


def test_paging_params_and_stop_at_short_page() -> None:
    client, adapter, sleeps = make_client([(200, p) for p in PAGES], socrata_timeout_s=7.5)
    frame = client.fetch_crimes(date(2017, 1, 1), date(2017, 2, 1))

    assert len(adapter.requests) == 3  # the third page is short: no fourth request
    assert adapter.replies == []
    assert sleeps == []
    for i, offset in enumerate(["0", "3", "6"]):
        url = urlsplit(str(adapter.requests[i].url))
        assert (url.scheme, url.netloc, url.path) == (
            "https",
            "data.cityofchicago.org",
            "/resource/ijzp-q8t2.json",
        )
        assert adapter.params(i) == {
            "$where": "date >= '2017-01-01T00:00:00' AND date < '2017-02-01T00:00:00'",
            "$order": ":id",
            "$limit": "3",
            "$offset": offset,
        }
    assert adapter.timeouts == [7.5, 7.5, 7.5]
    assert "X-App-Token" not in adapter.requests[0].headers

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


def test_exact_multiple_of_page_size_ends_with_empty_page() -> None:
    client, adapter, _ = make_client([(200, PAGES[0]), (200, PAGES[1]), (200, [])])
    frame = client.fetch_crimes(date(2017, 1, 1), date(2017, 2, 1))
    assert len(frame) == 6
    assert [adapter.params(i)["$offset"] for i in range(3)] == ["0", "3", "6"]


def test_empty_window_gives_empty_frame_with_raw_columns() -> None:
    client, adapter, _ = make_client([(200, [])])
    frame = client.fetch_crimes(date(2030, 1, 1), date(2030, 2, 1))
    assert frame.empty
    assert list(frame.columns) == list(RAW_COLUMNS)
    assert len(adapter.requests) == 1


def test_app_token_is_sent_when_configured() -> None:
    client, adapter, _ = make_client([(200, [])], socrata_app_token=SecretStr("tok-123"))
    client.fetch_crimes(date(2017, 1, 1), date(2017, 2, 1))
    assert adapter.requests[0].headers["X-App-Token"] == "tok-123"
    assert "tok-123" not in repr(client)


def test_retries_on_429_5xx_and_timeouts_then_succeeds() -> None:
    replies: list[Reply] = [
        (429, {"message": "slow down"}),
        (503, {"message": "unavailable"}),
        requests.exceptions.ReadTimeout("read timed out"),
        requests.exceptions.ConnectionError("connection reset"),
        (200, PAGES[2]),
    ]
    client, adapter, sleeps = make_client(replies)
    started = time.monotonic()
    frame = client.fetch_crimes(date(2017, 1, 1), date(2017, 2, 1))
    assert time.monotonic() - started < 2  # nothing really waited
    assert len(frame) == 1
    assert len(adapter.requests) == 5
    # Every retry asked for the same page.
    assert {adapter.params(i)["$offset"] for i in range(5)} == {"0"}
    # Exponential back-off with jitter: attempt k waits within [0.5, 1] * base * 2**k.
    assert len(sleeps) == 4
    for k, delay in enumerate(sleeps):
        assert 0.5 * 2**k <= delay <= 2**k


def test_retry_after_header_is_honoured() -> None:
    client, _, sleeps = make_client([(429, {}, {"Retry-After": "7"}), (200, [])])
    client.fetch_crimes(date(2017, 1, 1), date(2017, 2, 1))
    assert sleeps == [7.0]


def test_backoff_is_capped() -> None:
    replies: list[Reply] = [(500, {})] * 6
    client, _, sleeps = make_client([*replies, (200, [])], retries=6)
    client.backoff_max_s = 4.0
    client.fetch_crimes(date(2017, 1, 1), date(2017, 2, 1))
    assert len(sleeps) == 6
    assert max(sleeps) <= 4.0
    assert sleeps[-1] >= 2.0


def test_gives_up_after_max_retries() -> None:
    client, adapter, sleeps = make_client([(503, {"message": "down"})] * 3, retries=2)
    with pytest.raises(SocrataError) as info:
        client.fetch_crimes(date(2017, 1, 1), date(2017, 2, 1))
    message = str(info.value)
    assert "after 3 attempt(s)" in message
    assert "503" in message
    assert "ijzp-q8t2" in message
    assert len(adapter.requests) == 3
    assert len(sleeps) == 2


def test_gives_up_on_persistent_timeouts() -> None:
    client, adapter, sleeps = make_client([requests.exceptions.ConnectTimeout("timed out")] * 2, retries=1)
    with pytest.raises(SocrataError, match="ConnectTimeout"):
        client.fetch_crimes(date(2017, 1, 1), date(2017, 2, 1))
    assert len(adapter.requests) == 2
    assert len(sleeps) == 1


def test_400_fails_at_once_with_the_server_message() -> None:
    client, adapter, sleeps = make_client([(400, canned("error_400.json")), (200, [])])
    with pytest.raises(SocrataError) as info:
        client.fetch_crimes(date(2017, 1, 1), date(2017, 2, 1))
    message = str(info.value)
    assert "HTTP 400" in message
    assert "not retrying" in message
    assert "Invalid SoQL query" in message
    assert "$where=date >= '2017-01-01T00:00:00'" in message
    assert len(adapter.requests) == 1
    assert sleeps == []


@pytest.mark.parametrize("status", [401, 403, 404])
def test_other_4xx_fail_at_once(status: int) -> None:
    client, adapter, sleeps = make_client([(status, {"message": "nope"})])
    with pytest.raises(SocrataError, match=f"HTTP {status}"):
        client.fetch_stations()
    assert len(adapter.requests) == 1
    assert sleeps == []


def test_failure_on_a_later_page_returns_nothing_partial() -> None:
    client, adapter, _ = make_client([(200, PAGES[0]), (400, {"message": "bad"})])
    with pytest.raises(SocrataError):
        client.fetch_crimes(date(2017, 1, 1), date(2017, 2, 1))
    assert len(adapter.requests) == 2


def test_fetch_stations() -> None:
    client, adapter, _ = make_client([(200, canned("stations.json"))], page_size=50)
    frame = client.fetch_stations()
    assert urlsplit(str(adapter.requests[0].url)).path == "/resource/z8bn-74gv.json"
    assert "$where" not in adapter.params(0)
    assert adapter.params(0)["$order"] == ":id"
    assert list(frame.columns) == list(STATION_COLUMNS)
    assert frame["district"].tolist() == ["1", "Headquarters"]
    assert (
        frame["website"].iloc[0] == "http://home.chicagopolice.org/community/districts/1st-district-central/"
    )
    assert pd.isna(frame["phone"].iloc[1])


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


def test_progress_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    client, _, _ = make_client([(200, p) for p in PAGES])
    with caplog.at_level("INFO", logger="chicago_arrest.socrata"):
        client.fetch_crimes(date(2017, 1, 1), date(2017, 2, 1))
    lines = [r.getMessage() for r in caplog.records if r.name == "chicago_arrest.socrata"]
    assert lines == [
        "crimes 2017-01-01..2017-02-01: page 1, 3 rows so far",
        "crimes 2017-01-01..2017-02-01: page 2, 6 rows so far",
        "crimes 2017-01-01..2017-02-01: page 3, 7 rows so far",
    ]


def test_invalid_window() -> None:
    client, adapter, _ = make_client([])
    with pytest.raises(ValueError, match="empty window"):
        client.fetch_crimes(date(2017, 2, 1), date(2017, 2, 1))
    assert adapter.requests == []


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
