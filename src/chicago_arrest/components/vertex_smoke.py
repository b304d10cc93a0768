"""Vertex smoke probe: the project image writes through ``/gcs`` and saves a tiny servable model (make vertex-smoke)."""

from kfp import dsl
from kfp.dsl import Artifact, Output

from chicago_arrest.components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def vertex_smoke_probe(probe_dir: str, model: Output[Artifact]) -> str:
    """Write ``probe.json`` to ``probe_dir``, save the tiny model to ``model``; return the model's URI."""
    from chicago_arrest.steps import run_step
    from chicago_arrest.steps.vertex import smoke_probe_step

    run_step(smoke_probe_step, probe_dir, model.path)
    return model.uri
