"""One filter worker process: a grpc.aio ExternalProcessor server on one Unix socket.

`switchyard up` starts `gateway.workers` of these; Envoy spreads ext_proc streams across them and
checks each with gRPC health (grpc.health.v1), which a stopped or stuck worker fails.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import stat
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from envoy.service.accesslog.v3 import als_pb2_grpc
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc

from filter.config import Config, ConfigError, load_config
from filter.latency import LatencyBoard
from filter.governance.service import Governance
from filter.metrics import Metrics
from filter.observer import ResponseObserver
from filter.processor import Processor
from filter.render.bootstrap import connection_buffer_bytes
from filter.routing import Router, build_router
from filter.state import open_store
from filter.tracing import SpanExporter

log = logging.getLogger("switchyard.worker")
# In-flight LLM streams finish within this on shutdown; Envoy stops sending new ones first.
SHUTDOWN_GRACE_S = 10.0


# The socket's directory is the trust boundary (private to `switchyard up`, or a volume shared with
# Envoy's container only); within it, Envoy's group may connect.
SOCKET_MODE = 0o660


async def start_router(config: Config) -> Router | None:
    """The configured router with the configured route list already compiled: the first request
    must not pay for it (seconds for the embedded engine, against a 1 s deadline)."""
    router = build_router(config.routing)
    if router is not None:
        await asyncio.to_thread(router.prepare, config.routes)
    return router


async def serve(config_path: str, socket_path: str, state_dir: str) -> None:
    config = load_config(config_path)
    router = await start_router(config)
    # The buffered request body travels in one gRPC message, up to what Envoy buffers (the filter
    # answers 413 past gateway.max_request_bytes), and so does a translated answer held whole.
    limit = connection_buffer_bytes(config.gateway) + 64 * 1024
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", limit),
            ("grpc.so_reuseport", 0),
        ]
    )
    spans = SpanExporter(config.gateway.otlp_endpoint, config.gateway.service_name) if config.gateway.otlp_endpoint else None
    metrics = Metrics()
    settings = config.gateway.store  # a change needs a restart: one store for the worker's life
    store = open_store(settings.url, key_prefix=settings.key_prefix,
                       password=settings.password.reveal() if settings.password else None, directory=state_dir)
    processor = Processor(config, router, metrics, spans, store, LatencyBoard(state_dir))
    external_processor_pb2_grpc.add_ExternalProcessorServicer_to_server(processor, server)
    # Envoy's governance extension: rate-limit and budget counts in the shared store.
    governance = Governance(config, store, metrics)
    server.add_generic_rpc_handlers((governance.handler(),))
    als_pb2_grpc.add_AccessLogServiceServicer_to_server(ResponseObserver(spans), server)
    health_service = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_service, server)
    path = Path(socket_path)
    _remove_stale_socket(path)
    if server.add_insecure_port(f"unix:{path}") == 0:
        raise SystemExit(f"filter worker: cannot listen on {path}")
    await server.start()
    os.chmod(path, SOCKET_MODE)
    await health_service.set("", health_pb2.HealthCheckResponse.SERVING)
    log.info("filter worker listening on %s", path)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(reload(config_path, processor, governance)))
    await stop.wait()
    await health_service.enter_graceful_shutdown()  # Envoy's next check takes it out of the rotation
    await server.stop(SHUTDOWN_GRACE_S)
    if processor.router is not None:
        await processor.router.aclose()
    await store.aclose()
    if spans is not None:
        spans.close()  # flushes what is still queued


async def reload(config_path: str, processor: Processor, governance: Governance | None = None) -> None:
    """SIGHUP from the supervisor: re-read the configuration; a bad one keeps the running one."""
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        log.error("reload rejected, keeping the running configuration: %s", exc)
        return
    router = processor.router
    if config.routing != processor.config.routing:
        # A new engine loads off the event loop; requests keep being served meanwhile.
        router = await asyncio.to_thread(build_router, config.routing)
        old = processor.router
        if old is not None:
            asyncio.get_running_loop().call_later(SHUTDOWN_GRACE_S, lambda: asyncio.ensure_future(old.aclose()))
    if router is not None:
        await asyncio.to_thread(router.prepare, config.routes)
    processor.apply(config, router)
    if governance is not None:
        governance.apply(config)
    log.info("configuration reloaded")


def _remove_stale_socket(path: Path) -> None:
    """A worker that died leaves its socket file behind; its restart listens on the same path."""
    try:
        if stat.S_ISSOCK(path.lstat().st_mode):
            path.unlink()
    except FileNotFoundError:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="switchyard-worker")
    parser.add_argument("--config", required=True)
    parser.add_argument("--socket", required=True, help="the Unix socket to listen on")
    # The gateway's private runtime directory: the embedded store's file, shared by its workers.
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s[%(process)d] %(levelname)s %(message)s")
    asyncio.run(serve(args.config, args.socket, args.state_dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
