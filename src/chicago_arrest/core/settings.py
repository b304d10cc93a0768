"""Runtime settings, read from the environment (prefix ``ARREST_``) and an optional ``.env`` file.

Nothing happens at import time: call :func:`get_settings` (or build :class:`Settings` yourself) where a value
is needed. ``MLFLOW_TRACKING_URI`` is honoured as well as ``ARREST_MLFLOW_TRACKING_URI``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from chicago_arrest.core import names

#: Local development defaults of MinIO / KFP's SeaweedFS. Clearly not secrets; override them anywhere real.
LOCAL_S3_ACCESS_KEY = "minio"
LOCAL_S3_SECRET_KEY = "minio123"  # the well-known local default of KFP's object store


class Settings(BaseSettings):
    """All knobs of the library, one place.

    Attributes:
        socrata_domain: Socrata host of the City of Chicago data portal.
        crimes_dataset_id: "Crimes - 2001 to present".
        stations_dataset_id: "Police Stations".
        districts_dataset_id: "Boundaries - Police Districts (current)" (GeoJSON export; per-area figures).
        community_areas_dataset_id: "Boundaries - Community Areas (current)" (GeoJSON export; maps).
        socrata_app_token: Optional app token (raises Socrata's rate limits).
        socrata_timeout_s: Per-request timeout.
        socrata_page_size: Rows per page of a paged query.
        socrata_max_retries: Retries on 429 / 5xx / time-outs, with exponential back-off.
        store_backend: ``local`` (a directory) or ``s3`` (MinIO or any S3 API).
        s3_endpoint: ``host:port`` of the S3 API.
        s3_access_key: S3 access key.
        s3_secret_key: S3 secret key.
        s3_bucket: Bucket that holds raw and curated data.
        s3_secure: Use HTTPS.
        s3_region: Region sent to the S3 API.
        mlflow_tracking_uri: MLflow tracking URI; defaults to a SQLite file under ``data_dir``.
        data_dir: Local working directory (object store, MLflow, run outputs, serving state).
        models_bucket: Bucket where the cluster deploy step publishes served model versions
            (``s3://<models_bucket>/arrest-predictor/v<N>/``), read by KServe's storage-initializer.
        serving_image: Image of the predictor the cluster deploy step deploys.
        serving_profile: Resources of the predictor: ``standard`` or ``kind`` (trimmed for a laptop).
    """

    model_config = SettingsConfigDict(
        env_prefix="ARREST_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    socrata_domain: str = "data.cityofchicago.org"
    crimes_dataset_id: str = "ijzp-q8t2"
    stations_dataset_id: str = "z8bn-74gv"
    districts_dataset_id: str = "24zt-jpfn"
    community_areas_dataset_id: str = "igwz-8jzy"
    socrata_app_token: SecretStr | None = None
    socrata_timeout_s: float = 60.0
    socrata_page_size: int = Field(default=50_000, gt=0)
    socrata_max_retries: int = Field(default=5, ge=0)

    store_backend: Literal["local", "s3"] = "local"
    s3_endpoint: str = "localhost:9000"
    s3_access_key: str = LOCAL_S3_ACCESS_KEY
    s3_secret_key: SecretStr = SecretStr(LOCAL_S3_SECRET_KEY)
    s3_bucket: str = names.DATA_BUCKET
    s3_secure: bool = False
    s3_region: str = "us-east-1"

    mlflow_tracking_uri: str | None = Field(
        default=None, validation_alias=AliasChoices("ARREST_MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_URI")
    )
    data_dir: Path = Path(".data")

    models_bucket: str = names.MODELS_BUCKET
    serving_image: str = names.DEFAULT_IMAGE
    serving_profile: Literal["standard", "kind"] = "standard"

    @property
    def store_dir(self) -> Path:
        """Root of the local object store (``store_backend=local``)."""
        return self.data_dir / "store"

    @property
    def mlflow_dir(self) -> Path:
        """Folder of the local MLflow SQLite database and artifacts."""
        return self.data_dir / "mlflow"

    @property
    def serving_config_path(self) -> Path:
        """The local serving configuration that ``make serve`` reads and the deploy step writes."""
        return self.data_dir / "serving" / "serving.json"

    def resolved_tracking_uri(self) -> str:
        """Return the MLflow tracking URI: the configured one, else a local SQLite store under ``data_dir``."""
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{(self.mlflow_dir / 'mlflow.db').resolve()}"

    def local_artifact_root(self) -> str:
        """Return the artifact root used for a local (SQLite) tracking store."""
        return (self.mlflow_dir / "artifacts").resolve().as_uri()


def get_settings() -> Settings:
    """Build the settings from the current environment.

    Returns:
        A fresh :class:`Settings`; cheap enough to call per use, so environment changes are always seen.
    """
    return Settings()
