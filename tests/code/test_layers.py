"""The tree shows the architecture: packages by stage, data flowing one way, no import cycles (issue 24).

The import graph is read from the source (:mod:`tests.code.layers`): every ``import`` at any depth, in
functions and under ``TYPE_CHECKING`` too, of ``src/chicago_arrest`` and ``serving/arrest_server``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.code.layers import LAYERS, RANK, cycles, graph, upward_imports

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("chicago_arrest", "arrest_server")


def roots(base: Path) -> list[tuple[Path, Path]]:
    return [
        (base / "src", base / "src" / "chicago_arrest"),
        (base / "serving", base / "serving" / "arrest_server"),
    ]


@pytest.fixture(scope="module")
def edges() -> dict[str, set[str]]:
    return graph(roots(REPO), PACKAGES)


def test_every_package_of_the_library_has_a_stage() -> None:
    packages = {p.name for p in (REPO / "src" / "chicago_arrest").iterdir() if (p / "__init__.py").is_file()}
    assert packages == set(RANK), "a package was added or removed: give it its place in tests/code/layers.py"
    modules = [p.name for p in (REPO / "src" / "chicago_arrest").glob("*.py") if p.name != "__init__.py"]
    assert modules == [], f"modules outside a stage package: {modules}"


def test_no_package_imports_one_above_it(edges: dict[str, set[str]]) -> None:
    assert upward_imports(edges) == []


def test_no_import_cycles(edges: dict[str, set[str]]) -> None:
    assert cycles(edges) == []


def test_modules_stay_small() -> None:
    sizes = {
        str(p.relative_to(REPO)): len(p.read_text(encoding="utf-8").splitlines())
        for root, folder in roots(REPO)
        for p in folder.rglob("*.py")
    }
    assert {path: n for path, n in sizes.items() if n > 600} == {}


def _copy(tmp_path: Path) -> Path:
    for _, folder in roots(REPO):
        shutil.copytree(
            folder, tmp_path / folder.relative_to(REPO), ignore=shutil.ignore_patterns("__pycache__")
        )
    return tmp_path


def test_a_reversed_import_is_caught(tmp_path: Path) -> None:
    """The checks fail on a deliberately reversed import: the schema (core) importing the training code."""
    copy = _copy(tmp_path)
    schema = copy / "src" / "chicago_arrest" / "core" / "schema.py"
    schema.write_text(
        schema.read_text(encoding="utf-8")
        + "\n\ndef _reversed():\n    from chicago_arrest.model import training\n",
        encoding="utf-8",
    )
    bad = graph(roots(copy), PACKAGES)
    assert "chicago_arrest.core.schema -> chicago_arrest.model.training" in upward_imports(bad)
    assert any("chicago_arrest.core.schema" in cycle for cycle in cycles(bad))


def test_the_server_never_imports_the_release_layer(tmp_path: Path) -> None:
    copy = _copy(tmp_path)
    model = copy / "serving" / "arrest_server" / "model.py"
    model.write_text(
        model.read_text(encoding="utf-8") + "\n\nfrom chicago_arrest.release.ops import open_release\n",
        encoding="utf-8",
    )
    assert "arrest_server.model -> chicago_arrest.release.ops" in upward_imports(graph(roots(copy), PACKAGES))


def test_the_stages_are_listed_lowest_first() -> None:
    order = [p for layer in LAYERS for p in layer]
    assert order[:3] == ["core", "data", "model"]
    assert order[-3:] == ["components", "pipelines", "cli"]
