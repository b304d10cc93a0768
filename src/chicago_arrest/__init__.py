"""Chicago crime arrest prediction: data, model and MLOps library."""

from importlib.metadata import PackageNotFoundError, version

try:
    #: The one home of the version is ``pyproject.toml``; the installed package metadata carries it.
    __version__ = version("chicago-arrest")
except PackageNotFoundError:  # pragma: no cover - running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
