"""End-to-end: the model server's web page (``/ui/``) in headless Chromium, against real servers.

One data folder is filled as the training pipeline fills it (:mod:`tests.e2e.make_ui_registry`: an XGBoost
champion and a logistic-regression challenger registered with metrics and model cards, the community areas
landed), then two servers start on it as ``make serve`` does: one with two worker processes (the page's routes
live in each), small limits and no token, one with ``ARREST_SERVER_API_TOKEN``. Playwright drives Debian's
Chromium (:mod:`tests.e2e.browser`); the tests skip, saying how to get it, where there is none.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import SHARED_DATA
from tests.e2e import browser
from tests.e2e.helpers import MODEL, REPO_ROOT, Server, child_env, spawn, start_server

pytestmark = pytest.mark.slow

TOKEN = "page-test-token"
MAX_ROWS = 300
MAX_BODY = 256 * 1024
#: The report the form is filled with (the generated data's categories).
FORM = {
    "date": "2017-12-14T21:30",
    "type": "THEFT",
    "iucr": "0860",
    "location": "DEPARTMENT STORE",
    "area": "32",
}


class Stack:
    def __init__(self, open_: Server, token: Server, data_dir: Path, built: dict[str, Any]) -> None:
        self.open, self.token, self.data_dir, self.built = open_, token, data_dir, built

    def set_canary(self, percent: int) -> None:
        """Change the local serving state as ``make canary`` does; wait until every worker applied it."""
        from chicago_arrest.core.names import MODEL_NAME
        from chicago_arrest.core.settings import Settings
        from chicago_arrest.registry.state import ModelRef, ServingState, save_state

        champion, challenger = self.built["champion"], self.built["challenger"]
        save_state(
            ServingState(
                champion=ModelRef(champion, f"models:/{MODEL_NAME}/{champion}"),
                challenger=ModelRef(challenger, f"models:/{MODEL_NAME}/{challenger}"),
                canary_percent=percent,
            ),
            Settings(data_dir=self.data_dir).serving_config_path,
        )
        deadline = time.monotonic() + 30
        seen = 0
        while time.monotonic() < deadline and seen < 10:  # several answers in a row: both workers applied it
            body = requests.get(f"{self.open.url}/ui/api/versions", timeout=10).json()
            seen = seen + 1 if body["canary_percent"] == percent else 0
            time.sleep(0.1)
        assert seen >= 10, f"the servers did not apply canary {percent} %"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    reason = browser.missing()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("ui-e2e")
    data_dir = root / "data"
    areas = SHARED_DATA / "community_areas.geojson"
    build = spawn(
        [sys.executable, str(REPO_ROOT / "tests" / "e2e" / "make_ui_registry.py"), str(data_dir)]
        + ([str(areas)] if areas.is_file() else []),
        root / "build.log",
        child_env(),
    )
    servers: list[Server] = []
    try:
        if build.wait(timeout=300) != 0:
            pytest.fail(f"building the registry failed:\n{build.output()[-4000:]}")
        built = json.loads(build.output().strip().splitlines()[-1])
        common = {"ARREST_DATA_DIR": str(data_dir), "ARREST_SERVER_POLL_INTERVAL_S": "0.2"}
        servers.append(
            start_server(
                ["--workers", "2"],
                root / "open.log",
                ARREST_SERVER_MAX_ROWS=str(MAX_ROWS),
                ARREST_SERVER_MAX_BODY_BYTES=str(MAX_BODY),
                **common,
            )
        )
        servers.append(
            start_server(
                [],
                root / "token.log",
                ARREST_SERVER_API_TOKEN=TOKEN,
                ARREST_SERVER_REQUEST_LOG="false",
                **common,
            )
        )
        for server in servers:
            server.wait_ready()
        yield Stack(servers[0], servers[1], data_dir, built)
    finally:
        for proc in (build, *servers):
            proc.stop()


def expect(locator: Any) -> Any:
    """Playwright's auto-waiting assertions (imported late: without playwright the module skips)."""
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


@pytest.fixture(scope="module")
def chromium(stack: Stack) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = browser.launch(playwright)
        yield instance
        instance.close()


@pytest.fixture
def page(chromium: Any, stack: Stack) -> Iterator[Any]:
    context = chromium.new_context(viewport={"width": 1360, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors in the page: {errors}"


def open_page(page: Any, server: Server) -> None:
    page.goto(f"{server.url}/ui/")
    page.wait_for_selector("body[data-ready=true]", timeout=30_000)


def fill_form(page: Any) -> None:
    page.get_by_label("Date and time").fill(FORM["date"])
    page.get_by_label("Crime type").select_option(FORM["type"])
    page.get_by_label("IUCR code and description").select_option(FORM["iucr"])
    page.get_by_label("Location description").select_option(FORM["location"])
    page.get_by_label("Community area", exact=True).select_option(FORM["area"])


def explain_in_page(page: Any) -> dict[str, Any]:
    """Submit the form; the record the page sent (what the V2 API gets too)."""
    with page.expect_request("**/ui/api/explain") as sent:
        page.get_by_role("button", name="Score and explain").click()
    page.wait_for_selector(".answer", timeout=30_000)
    record: dict[str, Any] = sent.value.post_data_json["record"]
    return record


def v2_explain(server: Server, record: dict[str, Any], request_id: str) -> dict[str, Any]:
    """The same record through the V2 API with ``"explain": true`` (BYTES for text and numbers, BOOL)."""
    inputs = []
    for name, value in record.items():
        if value is None:
            continue
        datatype = "BOOL" if isinstance(value, bool) else "BYTES"
        inputs.append(
            {
                "name": name,
                "datatype": datatype,
                "shape": [1],
                "data": [value if datatype == "BOOL" else str(value)],
            }
        )
    body = {"id": request_id, "parameters": {"content_type": "pd", "explain": True}, "inputs": inputs}
    response = requests.post(f"{server.url}/v2/models/{MODEL}/infer", json=body, timeout=30)
    assert response.status_code == 200, response.text
    answer = response.json()
    outputs = {o["name"]: o["data"][0] for o in answer["outputs"]}
    return {
        "version": answer["model_version"],
        "role": answer["parameters"]["model_role"],
        "probability": outputs["arrest_probability"],
        "arrest": outputs["arrest"],
        "explanation": json.loads(outputs["explanation"]),
    }


def shown_answer(page: Any, role: str) -> dict[str, Any]:
    card = page.locator(f".answer[data-role={role}]")
    bars = card.locator("li.bar")
    return {
        "version": card.get_attribute("data-version"),
        "probability": float(card.locator(".prob .value").get_attribute("data-probability")),
        "text": card.locator(".prob .value").inner_text(),
        "arrest": card.locator(".decision").get_attribute("data-arrest") == "true",
        "bars": [
            (bars.nth(i).get_attribute("data-field"), float(bars.nth(i).get_attribute("data-value")))
            for i in range(bars.count())
        ],
        "labels": [bars.nth(i).locator(".label").inner_text() for i in range(bars.count())],
    }


def id_for(role: str, percent: int) -> str:
    """A request id the canary routes to ``role`` (the router's deterministic bucket of the id)."""
    from arrest_server.router import bucket

    for i in range(10_000):
        candidate = f"page-test-{i}"
        if (bucket(candidate) < percent) == (role == "challenger"):
            return candidate
    raise AssertionError("no id found")


def check_against_api(page: Any, server: Server, record: dict[str, Any], role: str, percent: int) -> None:
    shown = shown_answer(page, role)
    api = v2_explain(server, record, id_for(role, percent))
    assert api["role"] == role
    assert shown["version"] == api["version"]
    assert shown["probability"] == pytest.approx(api["probability"], abs=1e-12)
    assert shown["text"] == f"{100 * api['probability']:.1f} %"
    assert shown["arrest"] is api["arrest"]
    expected = [(c["field"], c["value"]) for c in api["explanation"]["contributions"]]
    assert [f for f, _ in shown["bars"]] == [f for f, _ in expected]
    assert [v for _, v in shown["bars"]] == pytest.approx([v for _, v in expected], abs=1e-9)


# -- what if -----------------------------------------------------------------------------------------------


def test_the_form_answers_like_the_v2_api(page: Any, stack: Stack) -> None:
    open_page(page, stack.open)
    fill_form(page)
    record = explain_in_page(page)
    # The page sent what the form says, completed from the served model's vocabulary and the map.
    assert record["date"] == FORM["date"] + ":00"
    assert (record["primary_type"], record["iucr"]) == (FORM["type"], FORM["iucr"])
    assert record["description"] == "RETAIL THEFT"
    assert record["fbi_code"] == "06"
    assert record["location_description"] == FORM["location"]
    assert record["domestic"] is False
    assert record["community_area"] == FORM["area"]
    assert 41.6 < float(record["latitude"]) < 42.1
    assert -88.0 < float(record["longitude"]) < -87.5
    assert record["district"]
    assert record["beat"]
    assert record["ward"]
    assert page.locator(".answer").count() == 1  # no canary: the champion alone
    check_against_api(page, stack.open, record, "champion", 0)
    shown = shown_answer(page, "champion")
    assert "IUCR code" in shown["labels"]
    assert "place (coordinates)" in shown["labels"]
    assert (
        page.locator(".answer[data-role=champion] li.bar .fill").first.evaluate("e => e.style.width") == "50%"
    )


def test_choosing_a_crime_type_limits_the_codes(page: Any, stack: Stack) -> None:
    open_page(page, stack.open)
    choices = requests.get(f"{stack.open.url}/ui/api/choices", timeout=10).json()
    by_type = {t["name"]: [c["iucr"] for c in t["codes"]] for t in choices["primary_types"]}
    assert by_type["THEFT"] == ["0810", "0820", "0860"]  # the generated data's codes of theft
    codes = page.get_by_label("IUCR code and description")
    for crime_type in ("THEFT", "NARCOTICS", "BATTERY"):
        page.get_by_label("Crime type").select_option(crime_type)
        values = codes.locator("option").evaluate_all("options => options.map(o => o.value)")
        assert values == by_type[crime_type]
    assert codes.locator("option").first.inner_text() == "0460 \u2014 SIMPLE"
    # A click on the map places the report: area, coordinates and the area's usual beat, district and ward.
    areas = requests.get(f"{stack.open.url}/ui/api/areas", timeout=10).json()
    assert len(areas["areas"]) == 77
    target = next(a for a in areas["areas"] if a["area"] == "8")
    point = page.evaluate(
        """([lat, lon, proj]) => {
            const svg = document.querySelector('#map');
            const p = svg.createSVGPoint();
            p.x = (lon - proj.lon0) * proj.kx;
            p.y = (proj.lat_max - lat) * proj.ky;
            const screen = p.matrixTransform(svg.getScreenCTM());
            return [screen.x, screen.y];
        }""",
        [target["latitude"], target["longitude"], areas["projection"]],
    )
    page.mouse.click(*point)
    assert page.get_by_label("Community area", exact=True).input_value() == "8"
    assert float(page.get_by_label("Latitude").input_value()) == pytest.approx(target["latitude"], abs=0.002)
    assert float(page.get_by_label("Longitude").input_value()) == pytest.approx(
        target["longitude"], abs=0.002
    )
    assert page.get_by_label("Beat").input_value()
    assert page.locator("#map path.selected").get_attribute("data-area") == "8"


def test_a_bad_field_and_a_server_that_is_down_get_a_message(page: Any, stack: Stack) -> None:
    open_page(page, stack.open)
    fill_form(page)
    page.get_by_label("Latitude").fill("north")
    page.get_by_role("button", name="Score and explain").click()
    error = page.locator("#record-error")
    error.wait_for(state="visible")
    api = requests.post(
        f"{stack.open.url}/v1/models/{MODEL}:predict",
        json={
            "instances": [
                {"date": "2017-12-14T21:30:00", "primary_type": "THEFT", "iucr": "0860", "latitude": "north"}
            ]
        },
        timeout=10,
    )
    assert api.status_code == 400
    assert error.inner_text() == api.json()["error"].replace(" in row(s) 0", "")
    assert error.inner_text().startswith("field 'latitude' must be")
    assert error.inner_text().endswith("got 'north'")
    # The server stops answering (the browser's connection is refused).
    page.get_by_label("Latitude").fill("41.88")
    page.route("**/ui/api/explain", lambda route: route.abort("connectionrefused"))
    page.get_by_role("button", name="Score and explain").click()
    expect(page.locator("#record-error")).to_contain_text("does not answer")
    assert "stopped or restarting" in error.inner_text()
    assert page.locator(".answer").count() == 0


# -- a file --------------------------------------------------------------------------------------------------


def records(stack: Stack, n: int) -> list[dict[str, str]]:
    with open(stack.built["test_csv"], newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))[:n]


def as_csv(rows: list[dict[str, str]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def upload(page: Any, name: str, body: bytes) -> None:
    page.get_by_label("CSV file").set_input_files({"name": name, "mimeType": "text/csv", "buffer": body})
    page.get_by_role("button", name="Score the file").click()


def test_a_file_with_one_bad_record(page: Any, stack: Stack, tmp_path: Path) -> None:
    rows = records(stack, 40)
    rows[6]["date"] = "yesterday"
    open_page(page, stack.open)
    upload(page, "december.csv", as_csv(rows))
    summary = page.locator("#file-summary")
    summary.wait_for()
    assert (summary.get_attribute("data-rows"), summary.get_attribute("data-scored")) == ("40", "39")
    refused = page.locator("#refused tr[data-row]")
    assert refused.count() == 1
    assert refused.first.get_attribute("data-row") == "7"
    api = requests.post(
        f"{stack.open.url}/v1/models/{MODEL}:predict", json={"instances": [rows[6]]}, timeout=10
    )
    assert api.status_code == 400
    assert refused.first.locator("td").nth(1).inner_text() == api.json()["error"].replace(" in row(s) 0", "")
    with page.expect_download() as download:
        page.locator("#file-download").click()
    assert download.value.suggested_filename == "december-scored-v1.csv"
    path = tmp_path / "scored.csv"
    download.value.save_as(path)
    with open(path, newline="", encoding="utf-8") as handle:
        scored = list(csv.DictReader(handle))
    good = [r for i, r in enumerate(rows) if i != 6]
    assert [int(r["row"]) for r in scored] == [i + 1 for i in range(40) if i != 6]
    assert [r["id"] for r in scored] == [r["id"] for r in good]
    expected = requests.post(
        f"{stack.open.url}/v1/models/{MODEL}:predict", json={"instances": good}, timeout=30
    ).json()["predictions"]
    assert [float(r["arrest_probability"]) for r in scored] == pytest.approx(expected, abs=1e-12)
    assert {r["model_version"] for r in scored} == {stack.built["champion"]}


def test_too_many_records_and_too_large_a_file_get_a_message(page: Any, stack: Stack) -> None:
    open_page(page, stack.open)
    rows = records(stack, 40)
    upload(page, "many.csv", as_csv((rows * 8)[: MAX_ROWS + 1]))
    error = page.locator("#file-error")
    error.wait_for(state="visible")
    assert error.inner_text() == (
        f"Too large: the file has {MAX_ROWS + 1} records; at most {MAX_ROWS} are accepted (ARREST_SERVER_MAX_ROWS)"
    )
    big = as_csv(rows * 60)
    assert len(big) > MAX_BODY
    upload(page, "big.csv", big)
    expect(page.locator("#file-error")).to_contain_text("ARREST_SERVER_MAX_BODY_BYTES")
    assert (
        "the server accepts at most 256 KB (262,144 bytes, ARREST_SERVER_MAX_BODY_BYTES)"
        in error.inner_text()
    )
    assert page.locator("#file-summary").count() == 0


# -- served versions and the canary --------------------------------------------------------------------------


def test_a_canary_shows_both_versions(page: Any, stack: Stack) -> None:
    stack.set_canary(50)
    try:
        open_page(page, stack.open)
        assert "canary live" in page.locator("#serving").inner_text()
        cards = page.locator(".version")
        assert cards.count() == 2
        for role, version in (
            ("champion", stack.built["champion"]),
            ("challenger", stack.built["challenger"]),
        ):
            card = page.locator(f".version[data-role={role}]")
            assert card.get_attribute("data-version") == version
            assert "50 % of requests" in card.locator("h3").inner_text()
            auc = float(card.locator("tr[data-metric=roc_auc] td").nth(1).inner_text())
            assert 0.5 < auc <= 1.0
        # The metrics are the registry's, as the register step logged them.
        from mlflow.tracking import MlflowClient

        from chicago_arrest.core.names import MODEL_NAME
        from chicago_arrest.core.settings import Settings

        client = MlflowClient(Settings(data_dir=stack.data_dir).resolved_tracking_uri())
        run = client.get_model_version(MODEL_NAME, stack.built["challenger"]).run_id
        logged = client.get_run(run).data.metrics["selected_test_roc_auc"]
        challenger_auc = page.locator(".version[data-role=challenger] tr[data-metric=roc_auc] td").nth(1)
        assert challenger_auc.inner_text() == f"{logged:.4f}"
        page.get_by_role("button", name=f"Show the model card of version {stack.built['challenger']}").click()
        heading = page.frame_locator("#card-frame").locator("h1")
        assert (
            heading.inner_text() == f"Model card: {MODEL_NAME} version {stack.built['challenger']} (logreg)"
        )

        fill_form(page)
        record = explain_in_page(page)
        assert page.locator(".answer").count() == 2
        for role in ("champion", "challenger"):
            check_against_api(page, stack.open, record, role, 50)
        assert (
            shown_answer(page, "champion")["probability"] != shown_answer(page, "challenger")["probability"]
        )
    finally:
        stack.set_canary(0)


# -- the token, the keyboard, the labels ---------------------------------------------------------------------


def test_the_page_asks_for_the_token_and_keeps_it_for_the_session_only(chromium: Any, stack: Stack) -> None:
    server = stack.token
    for name in ("app.js", "api.js"):  # files, the page's modules included: open
        assert requests.get(f"{server.url}/ui/{name}", timeout=10).status_code == 200
    assert requests.get(f"{server.url}/ui/api/config", timeout=10).status_code == 401  # data: token
    context = chromium.new_context()
    page = context.new_page()
    page.goto(f"{server.url}/ui/")
    token_input = page.get_by_label("API token", exact=True)
    token_input.wait_for()
    assert page.locator("#main").is_hidden()
    token_input.fill("not-the-token")
    page.get_by_role("button", name="Use this token").click()
    expect(page.locator("#message")).to_contain_text("refused the token")
    assert "missing or wrong bearer token" in page.locator("#message").inner_text()
    token_input.fill(TOKEN)
    page.get_by_role("button", name="Use this token").click()
    page.wait_for_selector("body[data-ready=true]", timeout=30_000)
    assert page.locator("#message").is_hidden()
    fill_form(page)
    explain_in_page(page)
    assert page.locator(".answer").count() == 1
    storage = page.evaluate("() => [JSON.stringify(sessionStorage), localStorage.length, document.cookie]")
    assert TOKEN in storage[0]
    assert storage[1] == 0
    assert storage[2] == ""
    # Another session (a new tab's storage) is asked again.
    other = chromium.new_context().new_page()
    other.goto(f"{server.url}/ui/")
    other.get_by_label("API token", exact=True).wait_for()
    other.context.close()
    context.close()


def test_every_control_has_a_label_and_the_keyboard_alone_scores_a_report(page: Any, stack: Stack) -> None:
    open_page(page, stack.open)
    unlabelled = page.evaluate(
        """() => Array.from(document.querySelectorAll('input, select, textarea, button, iframe, svg[role=img]'))
            .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                         && !e.getAttribute('aria-labelledby') && !e.getAttribute('title')
                         && !(e.tagName === 'BUTTON' && e.textContent.trim()))
            .map(e => e.outerHTML.slice(0, 80))"""
    )
    assert unlabelled == []
    snapshot = page.locator("#record-form").aria_snapshot()
    for name in (
        "Date and time",
        "Crime type",
        "IUCR code and description",
        "Location description",
        "Domestic",
        "Community area",
        "Latitude",
        "Longitude",
        "Score and explain",
    ):
        assert name in snapshot, snapshot
    # Tab from the top of the page through the form: every control is reached, in order.
    page.locator("body").focus()
    reached: list[str] = []
    for _ in range(40):
        page.keyboard.press("Tab")
        reached.append(page.evaluate("document.activeElement.id || document.activeElement.tagName"))
        if reached[-1] == "explain":
            break
    form = ["f-date", "f-type", "f-iucr", "f-location", "f-domestic", "f-area", "f-lat", "f-lon", "explain"]
    assert list(dict.fromkeys(r for r in reached if r in form)) == form, reached  # the date has several stops
    # Only the keyboard: choose NARCOTICS (type-ahead in the list), tick domestic, submit with Enter.
    page.get_by_label("Crime type").focus()
    page.keyboard.type("NARC")
    assert page.get_by_label("Crime type").input_value() == "NARCOTICS"
    page.get_by_label("Domestic").focus()
    page.keyboard.press("Space")
    page.get_by_role("button", name="Score and explain").focus()
    with page.expect_request("**/ui/api/explain") as sent:
        page.keyboard.press("Enter")
    page.wait_for_selector(".answer")
    record = sent.value.post_data_json["record"]
    assert record["primary_type"] == "NARCOTICS"
    assert record["iucr"] in ("1811", "2027")
    assert record["domestic"] is True
