"""The floor of any Python filter: a grpc.aio ExternalProcessor that does nothing.

It answers CONTINUE to the request headers and to the buffered body and never looks at either,
so Envoy in front of it pays exactly what every Python ext_proc filter pays on the request path
(one gRPC stream, two round trips), with no gateway logic at all. `make bench` runs it as the
"no-op Python ext_proc" target: whatever Switchyard cannot beat on this machine shows up here.

    python -m bench.noop_filter --port PORT
"""

from __future__ import annotations

import argparse
import asyncio

import grpc
from envoy.service.ext_proc.v3 import external_processor_pb2 as ext_proc_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc

CONTINUE_HEADERS = ext_proc_pb2.ProcessingResponse(request_headers=ext_proc_pb2.HeadersResponse())
CONTINUE_BODY = ext_proc_pb2.ProcessingResponse(request_body=ext_proc_pb2.BodyResponse())


class NoopProcessor(external_processor_pb2_grpc.ExternalProcessorServicer):
    async def Process(self, request_iterator, context):  # noqa: N802 (gRPC name)
        async for message in request_iterator:
            phase = message.WhichOneof("request")
            if phase == "request_headers":
                yield CONTINUE_HEADERS
            elif phase == "request_body":
                yield CONTINUE_BODY


async def serve(port: int) -> None:
    server = grpc.aio.server()
    external_processor_pb2_grpc.add_ExternalProcessorServicer_to_server(NoopProcessor(), server)
    if server.add_insecure_port(f"127.0.0.1:{port}") == 0:
        raise SystemExit(f"noop filter: cannot listen on 127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser(prog="noop-filter")
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
