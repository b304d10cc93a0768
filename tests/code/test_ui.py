"""The web page's server side without a browser: vocabulary, map, file scoring, versions, routes, the guard.

The page itself is driven in Chromium by ``tests/e2e/test_ui_page.py``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from arrest_server.guard import is_open
from arrest_server.loading import load_model
from arrest_server.process import SERVED, install_routes
from arrest_server.router import Deployment, DeploymentHolder, LoadedModel
from arrest_server.settings import ServerSettings
from arrest_server.ui.areas import area_map, load_area_map, projection_for, svg_path
from arrest_server.ui.files import score_file
from arrest_server.ui.paths import STATIC_DIR, is_static
from arrest_server.ui.versions import Registry, describe
from arrest_server.validation import TooManyRows, parse_v1
from fastapi import FastAPI
from fastapi.testclient import TestClient
from kserve.errors import InvalidInput

from chicago_arrest.core.settings import Settings
from chicago_arrest.core.store import LocalStore
from chicago_arrest.data.areas import BOUNDARY_STORE_KEYS, boundaries
from chicago_arrest.model.vocabulary import build_vocabulary, merge_vocabularies, model_vocabulary
from chicago_arrest.registry.state import ModelRef

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "data" / "golden"


@pytest.fixture(scope="module")
def golden() -> LoadedModel:
    return load_model(ModelRef("7", str(GOLDEN / "model")))


# -- vocabulary ----------------------------------------------------------------------------------------------


def test_the_vocabulary_groups_codes_under_their_crime_type(crimes: pd.DataFrame) -> None:
    frame = crimes.copy()
    frame.loc[0, ["primary_type", "iucr", "description"]] = [" theft ", "820", "$500 AND UNDER"]
    vocabulary = build_vocabulary(frame)
    types = {t["name"]: t for t in vocabulary["primary_types"]}
    assert vocabulary["grouped"] is True
    assert vocabulary["rows"] == len(frame)
    assert [c["iucr"] for c in types["THEFT"]["codes"]] == [
        "0810",
        "0820",
        "0860",
    ]  # normalised like the model
    retail = types["THEFT"]["codes"][2]
    assert (retail["description"], retail["fbi_code"]) == ("RETAIL THEFT", "06")
    assert sum(c["rows"] for c in types["THEFT"]["codes"]) == types["THEFT"]["rows"]
    assert sum(t["rows"] for t in types.values()) == len(frame)
    places = [p["name"] for p in vocabulary["location_descriptions"]]
    assert places == sorted(places)
    assert "DEPARTMENT STORE" in places
    areas = vocabulary["community_areas"]
    assert [a["area"] for a in areas] == sorted((a["area"] for a in areas), key=int)
    area = frame[frame["community_area"] == areas[0]["area"]]
    assert areas[0]["district"] == area["district"].value_counts().sort_index().idxmax()
    json.dumps(vocabulary)  # stored with the model, served as JSON


def test_a_model_without_a_stored_vocabulary_lists_its_encoder_categories(golden: LoadedModel) -> None:
    assert "vocabulary" not in (golden.model.info or {})
    vocabulary = model_vocabulary(golden.model)
    assert vocabulary["grouped"] is False
    assert "THEFT" in [t["name"] for t in vocabulary["primary_types"]]
    assert "0860" in [c["iucr"] for c in vocabulary["codes"]]
    assert "__MISSING__" not in json.dumps(vocabulary)


def test_two_vocabularies_merge_into_their_union(crimes: pd.DataFrame) -> None:
    first = build_vocabulary(crimes[crimes["primary_type"] != "NARCOTICS"])
    second = build_vocabulary(crimes[crimes["primary_type"].isin(["NARCOTICS", "THEFT"])])
    merged = merge_vocabularies(first, second)
    names = [t["name"] for t in merged["primary_types"]]
    assert names == sorted(names)
    assert "NARCOTICS" in names
    assert len(names) == len({t["name"] for t in first["primary_types"]} | {"NARCOTICS"})
    theft = next(t for t in merged["primary_types"] if t["name"] == "THEFT")
    assert theft["rows"] == next(t for t in first["primary_types"] if t["name"] == "THEFT")["rows"]


# -- the map -------------------------------------------------------------------------------------------------


def test_areas_become_svg_paths_with_their_holes() -> None:
    from shapely.geometry import Polygon

    projection = projection_for((-87.9, 41.6, -87.5, 42.0), width=400)
    assert projection.xy(-87.9, 42.0) == (0.0, 0.0)
    x, y = projection.xy(-87.5, 41.6)
    assert x == pytest.approx(400)
    assert y == pytest.approx(projection.height, abs=0.1)
    ring = Polygon(
        [(-87.9, 41.6), (-87.5, 41.6), (-87.5, 42.0), (-87.9, 42.0)],
        [[(-87.8, 41.7), (-87.7, 41.7), (-87.7, 41.8)]],
    )
    path = svg_path(ring, projection)
    assert path.count("M") == 2
    assert path.count("Z") == 2
    assert path.startswith("M0.0,")


def _generated_geojson() -> bytes:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "make_ui_registry", REPO / "tests" / "e2e" / "make_ui_registry.py"
    )
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.generated_areas()  # type: ignore[no-any-return]


def test_the_map_comes_from_the_landed_boundaries_or_says_why_not(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    missing = load_area_map(store)
    assert missing["areas"] == []
    assert "no community area boundaries at" in missing["reason"]
    assert not (tmp_path / "store").exists() or not any((tmp_path / "store").rglob("*"))  # nothing written
    store.put_bytes(BOUNDARY_STORE_KEYS["community_area"], _generated_geojson())
    found = load_area_map(store)
    assert len(found["areas"]) == 77
    first = found["areas"][0]
    assert (first["area"], first["name"]) == ("1", "Area 1")
    assert first["path"].startswith("M")
    assert 41.6 < first["latitude"] < 42.1
    store.put_bytes(BOUNDARY_STORE_KEYS["community_area"], b"not json")
    assert "could not be read" in load_area_map(store)["reason"]


@pytest.mark.shared_data
def test_the_real_community_areas_draw_within_the_frame(shared_data: Path) -> None:
    import geopandas as gpd

    frame = boundaries(gpd.read_file(shared_data / "community_areas.geojson"), "community_area")
    drawn = area_map(frame)
    assert len(drawn["areas"]) == 77
    projection = drawn["projection"]
    numbers = [
        float(v)
        for a in drawn["areas"]
        for v in a["path"].replace("M", " ").replace("L", " ").replace("Z", " ").replace(",", " ").split()
    ]
    assert min(numbers) >= -0.1
    assert max(numbers) <= max(projection["width"], projection["height"]) + 0.1
    loop = next(a for a in drawn["areas"] if a["area"] == "32")
    assert loop["name"] == "Loop"
    assert len(json.dumps(drawn)) < 60_000  # simplified: a light page


# -- a file --------------------------------------------------------------------------------------------------


def _csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def test_a_file_is_scored_without_its_bad_records(golden: LoadedModel, crimes: pd.DataFrame) -> None:
    frame = crimes.head(12).copy()
    frame.loc[3, "date"] = "yesterday"
    frame.loc[8, "iucr"] = ""
    frame = frame.rename(columns={"primary_type": "Primary Type"})  # the portal's export header
    result = score_file(_csv(frame), golden, "champion", max_rows=100)
    assert (result.rows, result.scored) == (12, 10)
    assert [row for row, _ in result.refused] == [4, 9]
    one = crimes.iloc[[3]].assign(date="yesterday").to_dict("records")
    with pytest.raises(InvalidInput) as api:
        parse_v1({"instances": one}, 100)
    assert result.refused[0][1] == str(api.value).replace(" in row(s) 0", "")
    assert result.refused[1][1] == "field 'iucr' is required but is empty"
    scored = pd.read_csv(io.StringIO(result.csv), dtype=str, keep_default_na=False)
    assert list(scored["row"]) == [str(i) for i in (1, 2, 3, 5, 6, 7, 8, 10, 11, 12)]
    assert list(scored.columns[-4:]) == [
        "arrest_probability",
        "predicted_arrest",
        "model_version",
        "model_role",
    ]
    assert "arrest" in scored.columns  # the file's label is kept
    good = crimes.head(12).drop(index=[3, 8])
    expected = golden.model.predict_arrest_probability(good)
    assert scored["arrest_probability"].astype(float).to_numpy() == pytest.approx(expected, abs=1e-15)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "the file is empty"),
        (b"\xff\xfe\x00garbage", "the file is not UTF-8 text"),
        (b"date,primary_type,iucr\n", "the file has a header line but no records"),
        (
            b"date,primary_type,iucr\n2017-13-45,THEFT,0820\n",
            "no record of the file can be scored (1 refused): field 'date'",
        ),
        (b"date,date,iucr\n1,2,3\n", "the column(s) date more than once"),
        (b'date,primary_type,iucr\n"2017-01-01,THEFT\n', "the file is not a readable CSV file"),
        (
            b"date,iucr\n2017-01-01T10:00:00,0820\n",
            "missing required field(s): primary_type (required: date, primary_type, iucr); the file's columns: "
            "date, iucr",
        ),
    ],
)
def test_a_file_that_cannot_be_scored_says_why(golden: LoadedModel, body: bytes, message: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        score_file(body, golden, "champion", max_rows=100)
    assert message in str(raised.value)


def test_a_file_over_the_row_limit_is_refused_whole(golden: LoadedModel, crimes: pd.DataFrame) -> None:
    with pytest.raises(TooManyRows, match="the file has 6 records; at most 5 are accepted"):
        score_file(_csv(crimes.head(6)), golden, "champion", max_rows=5)


# -- versions ------------------------------------------------------------------------------------------------


def test_versions_say_when_the_registry_cannot_be_read_and_create_nothing(
    golden: LoadedModel, tmp_path: Path
) -> None:
    store = tmp_path / "mlflow" / "mlflow.db"
    registry = Registry(f"sqlite:///{store}", "chicago-crime-arrest-predictor")
    card = LoadedModel("7", golden.uri, golden.model, "runs:/abc/model_card/model_card.html")
    described = describe(Deployment(golden, card, 20), registry)
    assert [v["share"] for v in described["versions"]] == [80, 20]
    champion = described["versions"][0]
    assert champion["model_type"] == "logreg"
    assert champion["metrics"] == {}
    assert "no MLflow store at" in champion["note"]
    assert not store.exists()
    assert not store.parent.exists()


# -- routes --------------------------------------------------------------------------------------------------


@pytest.fixture
def client(golden: LoadedModel, tmp_path: Path) -> Any:
    class Served:
        library_settings = Settings(data_dir=tmp_path / "data")
        holder = DeploymentHolder(Deployment(golden))

        @property
        def deployment(self) -> Deployment:
            return self.holder.current

    app = FastAPI()
    settings = ServerSettings(model_name="ui-test", api_token="s3cret", fast_infer=False)
    install_routes(app, settings)
    SERVED["ui-test"] = Served()
    try:
        yield TestClient(app)
    finally:
        SERVED.pop("ui-test", None)


AUTH = {"authorization": "Bearer s3cret"}


def test_the_page_files_are_open_and_its_data_needs_the_token(client: TestClient) -> None:
    page = client.get("/ui/")
    assert page.status_code == 200
    assert "<title>Chicago arrest model</title>" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    for script in sorted(STATIC_DIR.glob("*.js")):  # ES modules load only with a JavaScript MIME type
        served = client.get(f"/ui/{script.name}")
        assert served.status_code == 200, script.name
        assert served.headers["content-type"].startswith("text/javascript"), script.name
        assert served.text == script.read_text()
    assert client.get("/ui", follow_redirects=False).headers["location"] == "/ui/"
    assert client.get("/ui/api/config").status_code == 401
    assert client.get("/ui/nope.js").status_code == 404
    config = client.get("/ui/api/config", headers=AUTH).json()
    assert config == {
        "model_name": "ui-test",
        "max_rows": 10_000,
        "max_body_bytes": 16 * 1024 * 1024,
        "request_timeout_s": 10.0,
        "token_required": True,
    }
    assert client.get("/ui/api/nope", headers=AUTH).json() == {
        "error": "no such page API route: /ui/api/nope"
    }


def test_explain_answers_like_the_api_and_names_a_bad_field(client: TestClient, golden: LoadedModel) -> None:
    record = {"date": "2017-12-08T21:30:00", "primary_type": "THEFT", "iucr": "0860", "domestic": False}
    answer = client.post("/ui/api/explain", json={"record": record}, headers=AUTH).json()["answers"]
    assert [a["role"] for a in answer] == ["champion"]
    expected = golden.model.predict_arrest_probability(pd.DataFrame([record]))[0]
    assert answer[0]["arrest_probability"] == pytest.approx(expected, abs=1e-12)
    assert answer[0]["arrest"] is bool(expected >= golden.model.threshold)
    total = answer[0]["base_value"] + sum(c["value"] for c in answer[0]["contributions"])
    assert total == pytest.approx(answer[0]["log_odds"], abs=1e-6)
    bad = client.post("/ui/api/explain", json={"record": {**record, "ward": "north"}}, headers=AUTH)
    assert bad.status_code == 400
    with pytest.raises(InvalidInput) as api:
        parse_v1({"instances": [{**record, "ward": "north"}]}, 10)
    assert bad.json() == {"error": str(api.value).replace(" in row(s) 0", "")}
    assert bad.json()["error"].startswith("field 'ward' must be")
    assert "row" not in bad.json()["error"]
    assert client.post("/ui/api/explain", content=b"{", headers=AUTH).status_code == 400
    assert "the body must be" in client.post("/ui/api/explain", json={"x": 1}, headers=AUTH).json()["error"]


def test_the_score_route_and_its_roles(client: TestClient, crimes: pd.DataFrame) -> None:
    body = _csv(crimes.head(5))
    scored = client.post("/ui/api/score", content=body, headers={**AUTH, "content-type": "text/csv"}).json()
    assert (scored["rows"], scored["scored"], scored["model_version"]) == (5, 5, "7")
    nobody = client.post("/ui/api/score?role=challenger", content=body, headers=AUTH)
    assert (nobody.status_code, nobody.json()) == (404, {"error": "no challenger is served right now"})
    assert client.post("/ui/api/score?role=boss", content=body, headers=AUTH).status_code == 400


def test_the_setting_turns_the_page_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARREST_SERVER_UI", "false")
    settings = ServerSettings()
    assert settings.ui is False
    app = FastAPI()
    install_routes(app, settings)
    assert TestClient(app).get("/ui/").status_code == 404
    assert not [r for r in app.routes if getattr(r, "path", "").startswith("/ui")]


@pytest.mark.parametrize(
    ("method", "path", "static"),
    [
        ("GET", "/ui", True),
        ("GET", "/ui/", True),
        ("HEAD", "/ui/app.js", True),
        ("GET", "/ui/api.js", True),
        ("GET", "/ui/app.css", True),
        ("POST", "/ui/", False),
        ("GET", "/ui/api", False),
        ("GET", "/ui/api/config", False),
        ("GET", "/ui/api/card/champion", False),
        ("GET", "/ui/../v2", False),
        ("GET", "/ui/.hidden", False),
        ("GET", "/uix", False),
    ],
)
def test_only_the_page_files_are_open(method: str, path: str, static: bool) -> None:
    assert is_static(method, path) is static
    assert is_open(method, path) is static


def test_every_file_of_the_page_is_package_data() -> None:
    import fnmatch
    import tomllib

    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"][
        "arrest_server"
    ]
    files = [p.relative_to(STATIC_DIR.parent.parent).as_posix() for p in STATIC_DIR.rglob("*") if p.is_file()]
    scripts = {f"ui/static/{name}.js" for name in ("app", "api", "dom", "map", "versions", "file")}
    assert {"ui/static/index.html", "ui/static/app.css", *scripts} <= set(files)
    assert all(any(fnmatch.fnmatch(f, p) for p in patterns) for f in files)
    page = "".join(p.read_text() for p in sorted(STATIC_DIR.glob("*.*")) if p.suffix in (".html", ".js"))
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")  # nothing from elsewhere
    assert "https://" not in page


def test_the_page_scripts_are_modules_that_load_each_other() -> None:
    """index.html loads app.js as a module; every import names a file of the page; every module is used."""
    import re

    html = (STATIC_DIR / "index.html").read_text()
    assert re.findall(r"<script[^>]*>", html) == ['<script type="module" src="app.js">']  # nothing inline
    assert "</script>" in html.split('src="app.js">', 1)[1][:20]
    relative = re.compile(r'^import \{[^}]*\} from "\./([a-z]+\.js)";$')
    imports: dict[str, list[str]] = {}
    for script in STATIC_DIR.glob("*.js"):
        lines = [line for line in script.read_text().splitlines() if re.match(r"^\s*import\b", line)]
        matched = [relative.match(line) for line in lines]
        assert all(matched), f"{script.name}: an import that is not ./<file>.js: {lines}"
        imports[script.name] = [m.group(1) for m in matched if m]
    for name, imported in imports.items():
        assert set(imported) <= set(imports), f"{name} imports a file the page does not have: {imported}"
    reached: set[str] = set()
    todo = ["app.js"]
    while todo:
        name = todo.pop()
        if name not in reached:
            reached.add(name)
            todo.extend(imports[name])
    assert reached == set(imports), f"modules nothing imports: {set(imports) - reached}"
    for script in STATIC_DIR.glob("*.js"):
        text = script.read_text()
        assert len(text.splitlines()) < 600, script.name
        assert "eval(" not in text, script.name  # script-src 'self' forbids eval
        assert "new Function" not in text, script.name
