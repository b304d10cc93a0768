"""Served model: the selected candidate as the MLflow pyfunc folder the project image serves (Vertex)."""

from typing import List

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model, Output

from chicago_arrest.components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def serve_model(
    models: Input[List[Model]], evaluation: dict, test: Input[Dataset], served: Output[Artifact]
) -> str:
    """Write the selected model to ``served``; return its URI (the model upload's artifact URI)."""
    from chicago_arrest.steps import run_step
    from chicago_arrest.steps.vertex import serve_model_step

    run_step(serve_model_step, [m.path for m in models], evaluation, served.path, test.path)
    return served.uri
