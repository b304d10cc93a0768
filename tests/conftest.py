"""Fixtures shared by every test tier.

Real City of Chicago data lives in ``../shared/data`` on the maintainers' machines; tests that need it use the
``shared_data`` fixture and skip cleanly when it is absent. Everything else runs on generated records.
"""

from __future__ import annotations

import os

from chicago_arrest.core.runtime import OMP_WAIT_POLICY

# Before any library loads OpenMP: idle threads must sleep (chicago_arrest.core.runtime imports only the stdlib).
os.environ.setdefault("OMP_WAIT_POLICY", OMP_WAIT_POLICY)

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from chicago_arrest.core.settings import Settings
from chicago_arrest.data.synthetic import generate_crimes, generate_stations
from tests.mlflow_store import mlflow_state_restored

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ARREST_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real data (crimes_sample.csv, police_stations.csv); skips the test when absent."""
    if not (SHARED_DATA / "crimes_sample.csv").is_file():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def stations() -> pd.DataFrame:
    """Generated police stations (Socrata schema, text values)."""
    return generate_stations()


@pytest.fixture(scope="session")
def crimes(stations: pd.DataFrame) -> pd.DataFrame:
    """4,000 generated crimes over 2017 (Socrata schema, text values). Do not mutate: copy first."""
    return generate_crimes(4_000, stations=stations)


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings isolated in a temporary data directory, with no ARREST_* / MLFLOW_* leaking in."""
    for key in list(os.environ):
        if key.startswith(("ARREST_", "MLFLOW_")):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)
    return Settings(data_dir=tmp_path / "data")


@pytest.fixture(autouse=True)
def _restore_mlflow_tracking_uri() -> Iterator[None]:
    """``mlflow.set_tracking_uri`` also writes MLFLOW_TRACKING_URI into os.environ, which Settings honours:
    without this, one test's temporary MLflow store would leak into every later test (and a later
    ``set_tracking_uri("")`` would send MLflow to ``./mlflow.db`` in the working directory)."""
    with mlflow_state_restored():
        yield
