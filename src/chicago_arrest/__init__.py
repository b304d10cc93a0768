"""Chicago crime arrest prediction: data, model and MLOps library."""

__version__ = "0.1.0"
