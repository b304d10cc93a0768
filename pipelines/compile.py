"""Compile the pipeline to ``pipelines/compiled/<name>.yaml`` (``make compile``); the YAML is committed."""

from __future__ import annotations

from pathlib import Path

from kfp import compiler

from pipelines.training import PIPELINE_NAME, training_pipeline

COMPILED_DIR = Path(__file__).resolve().parent / "compiled"


def compile_training(out_dir: Path = COMPILED_DIR) -> Path:
    """Compile ``chicago-arrest-training`` to ``<out_dir>/chicago-arrest-training.yaml``.

    Args:
        out_dir: Output folder (created).

    Returns:
        The YAML path.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{PIPELINE_NAME}.yaml"
    compiler.Compiler().compile(training_pipeline, str(path))
    return path
