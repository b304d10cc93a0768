"""``python -m arrest_server``: serve the arrest model with the KServe model server (HTTP V1/V2 and gRPC V2).

Examples::

    python -m arrest_server                                   # local serving state (make serve)
    python -m arrest_server --http_port 9080 --grpc_port 9081
    python -m arrest_server --model_dir /mnt/models           # one model folder (the cluster)
    python -m arrest_server --model_uri models:/chicago-crime-arrest-predictor@champion
    python -m arrest_server --workers 0                       # one HTTP worker process per CPU (make serve)

All KServe model server flags (``--http_port``, ``--grpc_port``, ``--enable_grpc``, ``--workers``, ...) are
accepted. ``--workers N`` runs N HTTP worker processes (KServe's own multi-processing; each holds the models
and watches the serving state); ``0`` means one per available CPU (cgroup quota aware).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from arrest_server.settings import ServerSettings
from chicago_arrest.core.runtime import available_cpus, pin_thread_env

log = logging.getLogger("arrest_server")


def build_parser(settings: ServerSettings) -> argparse.ArgumentParser:
    """The command line: KServe's model server flags plus where the model comes from.

    Args:
        settings: Defaults (from ``ARREST_SERVER_*``).

    Returns:
        The parser.
    """
    from kserve.model_server import parser as kserve_parser

    parser = argparse.ArgumentParser(
        prog="python -m arrest_server",
        description="Serve the Chicago arrest model (KServe V2 / V1, champion + challenger canary).",
        parents=[kserve_parser],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.set_defaults(model_name=settings.model_name)
    parser.add_argument(
        "--model_dir", type=Path, default=settings.model_dir, help="local MLflow model folder to serve alone"
    )
    parser.add_argument("--model_uri", default=settings.model_uri, help="MLflow model URI to serve alone")
    parser.add_argument(
        "--model_version", default=settings.model_version, help="version reported for --model_dir/--model_uri"
    )
    parser.add_argument("--max_rows", type=int, default=settings.max_rows, help="most rows per request")
    parser.add_argument(
        "--max_body_bytes", type=int, default=settings.max_body_bytes, help="largest request body"
    )
    parser.add_argument(
        "--request_timeout_s",
        type=float,
        default=settings.request_timeout_s,
        help="time limit of one inference request (then HTTP 504)",
    )
    parser.add_argument(
        "--threads", type=int, default=settings.threads, help="model / native library threads"
    )
    parser.add_argument(
        "--batch_threads",
        type=int,
        default=settings.batch_threads,
        help="classifier threads for large requests (artifact.BATCH_ROWS records or more; 0: the CPUs available)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse flags, load the model(s) and run the server until SIGTERM/SIGINT.

    Args:
        argv: Command-line arguments (default: ``sys.argv[1:]``).

    Returns:
        Exit code (the server blocks; 1 when the model cannot be loaded).
    """
    from pydantic import ValidationError

    try:
        base = ServerSettings()
    except ValidationError as exc:
        print(f"error: invalid ARREST_SERVER_* setting: {exc}", file=sys.stderr)
        return 2
    # Before numpy / OpenMP load: thread pools of native libraries read these once.
    pin_thread_env(base.threads)
    args = build_parser(base).parse_args(argv)
    try:
        settings = ServerSettings(
            model_name=args.model_name,
            model_dir=args.model_dir,
            model_uri=args.model_uri,
            model_version=args.model_version,
            max_rows=args.max_rows,
            max_body_bytes=args.max_body_bytes,
            request_timeout_s=args.request_timeout_s,
            threads=args.threads,
            batch_threads=args.batch_threads,
        )
    except ValidationError as exc:
        print(f"error: invalid option: {exc}", file=sys.stderr)
        return 2
    if args.workers < 0:
        print("error: --workers must be 0 (one per available CPU) or more", file=sys.stderr)
        return 2

    from kserve import ModelServer

    from arrest_server.model import ArrestPredictor
    from arrest_server.process import setup_process
    from arrest_server.workers import use_worker_pool
    from chicago_arrest.core.errors import ReleaseError

    workers = args.workers or available_cpus()
    setup_process(settings)
    enable_grpc = args.enable_grpc
    if settings.api_token is not None and enable_grpc:
        log.warning("gRPC is off: ARREST_SERVER_API_TOKEN is set and the gRPC port has no authentication")
        enable_grpc = False
    model = ArrestPredictor(settings)
    try:
        model.load()
    except ReleaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        log.debug("model load failed", exc_info=True)
        print(
            f"error: could not load the model ({model.source}): {type(exc).__name__}: {exc}", file=sys.stderr
        )
        return 1
    use_worker_pool()  # workers that start without blocking, stop cleanly and flush (arrest_server.workers)
    server = ModelServer(
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        workers=workers,
        max_threads=args.max_threads,
        max_asyncio_workers=args.max_asyncio_workers,
        enable_grpc=enable_grpc,
        enable_docs_url=args.enable_docs_url,
        enable_latency_logging=settings.kserve_latency_log,
        access_log_format=args.access_log_format,
        event_loop=args.event_loop,
        timeout_keep_alive=args.timeout_keep_alive,
    )
    setup_process(settings)  # again: ModelServer may have configured KServe's logging
    log.info(
        "serving %s from %s on HTTP %d (%d worker%s), gRPC %s%s",
        settings.model_name,
        model.source,
        args.http_port,
        workers,
        "" if workers == 1 else "s",
        args.grpc_port if enable_grpc else "off",
        ", bearer token required" if settings.api_token is not None else "",
    )
    server.start([model])
    return 0


if __name__ == "__main__":
    sys.exit(main())
