"""KServe model server for the Chicago arrest model (``python -m arrest_server``).

Modules (nothing heavy is imported, and nothing runs, when this package is imported):

* :mod:`arrest_server.settings`: ``ARREST_SERVER_*`` settings.
* :mod:`arrest_server.validation`: strict V2 / V1 request parsing (bad input → HTTP 400 naming the field).
* :mod:`arrest_server.router`: champion/challenger split and hot reload of the local serving state.
* :mod:`arrest_server.observability`: Prometheus metrics and JSON access logs.
* :mod:`arrest_server.model`: the ``kserve.Model`` subclass :class:`~arrest_server.model.ArrestPredictor`.
* :mod:`arrest_server.__main__`: the command line.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
