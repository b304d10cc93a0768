"""KFP v2 components: each body is ONE call, ``run_step(<a function of chicago_arrest.steps>, ...)``.

The step functions document the arguments; a component names its inputs and outputs and types them.

Every component runs in the project image with the project installed, so nothing is installed at run time
(``install_kfp_package=False``, no ``packages_to_install``). Under ``kfp.local`` the same bodies run as
subprocesses of the host Python. The image is :data:`chicago_arrest.core.names.DEFAULT_IMAGE`; ``ARREST_IMAGE``
set when the pipeline is compiled overrides it (the committed YAML keeps the default).
"""

import os

from chicago_arrest.core.names import DEFAULT_IMAGE

#: The image every component runs in.
IMAGE = os.environ.get("ARREST_IMAGE") or DEFAULT_IMAGE
