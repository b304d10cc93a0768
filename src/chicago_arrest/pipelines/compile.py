"""Compile the pipelines to ``compiled/<name>.yaml`` beside this module (``make compile``); committed.

Every step runs in one image, :data:`chicago_arrest.components.IMAGE` (``ARREST_IMAGE`` when the components are
imported, else :data:`chicago_arrest.core.names.DEFAULT_IMAGE`): ``make compile IMAGE=...`` sets it. ``image=``
writes another image into every executor after compiling, for a process whose components are already imported
(``pipeline run`` on a cluster whose ``make kind-up`` loaded another image). ``profile=`` writes the train task's
requests of another cluster profile (:data:`chicago_arrest.pipelines.training.TRAIN_RESOURCES`; ``small`` on a
4 vCPU hosted runner), in the same two spellings the KFP compiler writes them.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from kfp import compiler

from chicago_arrest.components import IMAGE
from chicago_arrest.pipelines.training import PIPELINE_NAME, TRAIN_RESOURCES, training_pipeline

#: The executor of the train tasks (the one whose requests a cluster profile changes).
TRAIN_EXECUTOR = "exec-train"

COMPILED_DIR = Path(__file__).resolve().parent / "compiled"


def executor_images(text: str) -> dict[str, str]:
    """The image of every container executor of a compiled pipeline (its YAML), by executor name."""
    images = {}
    for doc in yaml.safe_load_all(text):  # the pipeline spec, then the platform spec (Kubernetes config)
        executors = (doc or {}).get("deploymentSpec", {}).get("executors", {})
        images.update({name: e["container"]["image"] for name, e in executors.items() if "container" in e})
    return images


def compile_training(
    out_dir: Path = COMPILED_DIR, image: str | None = None, profile: str | None = None
) -> Path:
    """Compile ``chicago-arrest-training`` to ``<out_dir>/chicago-arrest-training.yaml``.

    Args:
        out_dir: Output folder (created).
        image: The steps' image (default: :data:`chicago_arrest.components.IMAGE`).
        profile: Cluster profile of the train tasks' requests (default ``laptop``, as defined).

    Returns:
        The YAML path.
    """
    return _compile(training_pipeline, PIPELINE_NAME, out_dir, image, profile)


def compile_vertex(out_dir: Path = COMPILED_DIR) -> Path | None:
    """Compile ``chicago-arrest-vertex-training`` (needs the ``vertex`` extra); ``None`` without GCPC."""
    import importlib.util

    if importlib.util.find_spec("google_cloud_pipeline_components") is None:
        return None
    from chicago_arrest.pipelines.vertex_training import PIPELINE_NAME as VERTEX_NAME
    from chicago_arrest.pipelines.vertex_training import vertex_training_pipeline

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{VERTEX_NAME}.yaml"
    compiler.Compiler().compile(vertex_training_pipeline, str(path))
    return path


def compile_vertex_smoke(out_dir: Path = COMPILED_DIR) -> Path | None:
    """Compile ``chicago-arrest-vertex-smoke`` (issue 28; needs the ``vertex`` extra); ``None`` without GCPC."""
    import importlib.util

    if importlib.util.find_spec("google_cloud_pipeline_components") is None:
        return None
    from chicago_arrest.pipelines.vertex_smoke import PIPELINE_NAME as SMOKE_NAME
    from chicago_arrest.pipelines.vertex_smoke import vertex_smoke_pipeline

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{SMOKE_NAME}.yaml"
    compiler.Compiler().compile(vertex_smoke_pipeline, str(path))
    return path


def compile_batch_scoring(
    out_dir: Path = COMPILED_DIR, image: str | None = None, profile: str | None = None
) -> Path:
    """Compile ``chicago-arrest-batch-scoring`` (issue 13) to ``<out_dir>/<name>.yaml``."""
    from chicago_arrest.pipelines.batch_scoring import PIPELINE_NAME as NAME
    from chicago_arrest.pipelines.batch_scoring import batch_scoring_pipeline

    return _compile(batch_scoring_pipeline, NAME, out_dir, image, profile)


def compile_monitoring(
    out_dir: Path = COMPILED_DIR, image: str | None = None, profile: str | None = None
) -> Path:
    """Compile ``chicago-arrest-monitoring`` (issue 13) to ``<out_dir>/<name>.yaml``."""
    from chicago_arrest.pipelines.monitoring import PIPELINE_NAME as NAME
    from chicago_arrest.pipelines.monitoring import monitoring_pipeline

    return _compile(monitoring_pipeline, NAME, out_dir, image, profile)


def _train_resources(resources: dict, profile: str) -> None:
    """Set the train task's requests and limits of ``profile`` (as the KFP compiler spells them: both ways)."""
    from kfp.compiler.compiler_utils import _cpu_to_float, _memory_to_float

    wanted = TRAIN_RESOURCES[profile]
    for key, camel in (("cpu_request", "CpuRequest"), ("cpu_limit", "CpuLimit")):
        resources[f"resource{camel}"] = wanted[key]
        resources[camel[0].lower() + camel[1:]] = _cpu_to_float(wanted[key])
    for key, camel in (("memory_request", "MemoryRequest"), ("memory_limit", "MemoryLimit")):
        resources[f"resource{camel}"] = wanted[key]
        resources[camel[0].lower() + camel[1:]] = _memory_to_float(wanted[key])


def _compile(
    pipeline: object, name: str, out_dir: Path, image: str | None, profile: str | None = None
) -> Path:
    """Compile ``pipeline`` to ``<out_dir>/<name>.yaml``.

    ``image`` (if not the default) goes into every executor, the train task's resources of cluster ``profile`` (if
    not ``laptop``) into the train executor.
    """
    if profile is not None and profile not in TRAIN_RESOURCES:
        raise ValueError(f"cluster profile must be one of {', '.join(TRAIN_RESOURCES)}, got {profile!r}")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.yaml"
    compiler.Compiler().compile(pipeline, str(path))
    new_image = bool(image and image != IMAGE)
    new_profile = bool(profile and profile != "laptop")
    if new_image or new_profile:
        docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        for doc in docs:
            for key, executor in (doc or {}).get("deploymentSpec", {}).get("executors", {}).items():
                if "container" not in executor:
                    continue
                if new_image:
                    executor["container"]["image"] = image
                if new_profile and key == TRAIN_EXECUTOR:
                    _train_resources(executor["container"].setdefault("resources", {}), str(profile))
        path.write_text(yaml.safe_dump_all(docs, sort_keys=False), encoding="utf-8")
    return path


#: Every committed pipeline: ``make compile`` writes each (the Vertex ones only with the ``vertex`` extra).
COMPILERS = (
    compile_training,
    compile_vertex,
    compile_vertex_smoke,
    compile_batch_scoring,
    compile_monitoring,
)
