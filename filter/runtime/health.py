"""`switchyard health`: ask every filter worker's gRPC health service whether it is serving.

The probe of the filter container in Kubernetes, where the workers listen on Unix sockets in a
volume shared with Envoy's container (a kubelet gRPC or TCP probe needs a port).
"""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from filter.config import Config
from filter.render.bootstrap import filter_sockets

TIMEOUT_S = 2.0


def check_workers(config: Config) -> list[str]:
    """One line per worker that is not serving; empty when all are."""
    problems = []
    for path in filter_sockets(config):
        with grpc.insecure_channel(f"unix:{path}") as channel:
            try:
                answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=TIMEOUT_S)
            except grpc.RpcError as exc:
                problems.append(f"filter worker on {path}: {exc.code().name.lower()}")
                continue
            if answer.status != health_pb2.HealthCheckResponse.SERVING:
                problems.append(f"filter worker on {path}: {health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)}")
    return problems
