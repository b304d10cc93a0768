"""KFP v2 components: thin, containerised wrappers around :mod:`chicago_arrest.steps`.

Every component runs in the project image (``IMAGE``, built by ``make image`` from the Dockerfile) with the
project installed, so nothing is installed at run time (``install_kfp_package=False``, no
``packages_to_install``). Under ``kfp.local`` the same bodies run as subprocesses of the host Python.
"""

from chicago_arrest import __version__

#: The project image every component and the KServe predictor run in.
IMAGE = f"chicago-arrest:{__version__}"
