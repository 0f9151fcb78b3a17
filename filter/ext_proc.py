"""Building ext_proc ProcessingResponse messages: the only module that knows the proto shapes.

Header values are always written as `raw_value` (Envoy rejects a mutation that sets `value` too).
"""

from __future__ import annotations

from typing import Iterable, Mapping

from envoy.config.core.v3.base_pb2 import HeaderValue, HeaderValueOption
from envoy.extensions.filters.http.ext_proc.v3.processing_mode_pb2 import ProcessingMode
from envoy.service.ext_proc.v3.external_processor_pb2 import (
    BodyMutation,
    BodyResponse,
    CommonResponse,
    HeaderMutation,
    HeadersResponse,
    ImmediateResponse,
    ProcessingResponse,
    StreamedBodyResponse,
    TrailersResponse,
)
from envoy.type.v3.http_status_pb2 import HttpStatus
from google.protobuf.struct_pb2 import Struct

METADATA_NAMESPACE = "switchyard"
_OVERWRITE = HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD

# Built once: the answers that carry nothing request-specific.
CONTINUE_HEADERS = ProcessingResponse(request_headers=HeadersResponse())
CONTINUE_RESPONSE_HEADERS = ProcessingResponse(response_headers=HeadersResponse())
# Response phases on: headers now, the body streamed chunk by chunk (SSE stays SSE).
STREAM_RESPONSE = ProcessingMode(
    response_header_mode=ProcessingMode.SEND, response_body_mode=ProcessingMode.STREAMED
)
# The filter relays the body itself (filter/stream_guard.py), and may end it before the provider does.
RELAYED_RESPONSE = ProcessingMode(
    response_header_mode=ProcessingMode.SEND, response_body_mode=ProcessingMode.FULL_DUPLEX_STREAMED,
    response_trailer_mode=ProcessingMode.SEND,
)
SKIP_RESPONSE = ProcessingMode(
    response_header_mode=ProcessingMode.SKIP, response_body_mode=ProcessingMode.NONE
)


def header_values(headers) -> dict[str, str]:
    """The request headers of an ext_proc HttpHeaders message as a plain dict (lower-case keys)."""
    out = {}
    for h in headers.headers.headers:
        out[h.key] = h.raw_value.decode("utf-8", "replace") if h.raw_value else h.value
    return out


def mutation(set_headers: Iterable[tuple[str, str]], remove: Iterable[str] = ()) -> HeaderMutation:
    return HeaderMutation(
        set_headers=[
            HeaderValueOption(header=HeaderValue(key=k, raw_value=v.encode()), append_action=_OVERWRITE)
            for k, v in set_headers
        ],
        remove_headers=list(remove),
    )


def _metadata(values: Mapping[str, object] | None) -> Struct | None:
    if not values:
        return None
    # Field by field: several times faster than Struct.update's generic conversion.
    struct = Struct()
    fields = struct.fields[METADATA_NAMESPACE].struct_value.fields
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, str):
            fields[key].string_value = value
        elif isinstance(value, bool):
            fields[key].bool_value = value
        else:
            fields[key].number_value = value
    return struct


def immediate(
    status: int,
    body: bytes,
    *,
    content_type: str = "application/json",
    headers: Iterable[tuple[str, str]] = (),
    details: str = "",
    metadata: Mapping[str, object] | None = None,
) -> ProcessingResponse:
    """Answer the client from the gateway; nothing goes upstream."""
    return ProcessingResponse(
        immediate_response=ImmediateResponse(
            status=HttpStatus(code=status),
            headers=mutation([("content-type", content_type), *headers]),
            body=body,
            details=details,
        ),
        dynamic_metadata=_metadata(metadata),
    )


def forward_request(
    set_headers: Iterable[tuple[str, str]],
    remove_headers: Iterable[str],
    body: bytes,
    *,
    metadata: Mapping[str, object],
) -> ProcessingResponse:
    """Replace the buffered request body and headers, and make Envoy pick the route again."""
    return ProcessingResponse(
        request_body=BodyResponse(
            response=CommonResponse(
                header_mutation=mutation(set_headers, remove_headers),
                body_mutation=BodyMutation(body=body),
                clear_route_cache=True,
            )
        ),
        dynamic_metadata=_metadata(metadata),
    )


# Let the body come, and turn the response-headers phase on: the answer may need translating, or
# be a stream to guard.
CONTINUE_WATCHING_RESPONSE = ProcessingResponse(
    request_headers=HeadersResponse(),
    mode_override=ProcessingMode(
        request_body_mode=ProcessingMode.BUFFERED,
        response_header_mode=ProcessingMode.SEND,
        response_body_mode=ProcessingMode.NONE,
    ),
)


def continue_request_headers(*, watch_response: bool) -> ProcessingResponse:
    """Let the body come; with `watch_response`, the answer's headers come back to the filter."""
    return CONTINUE_WATCHING_RESPONSE if watch_response else CONTINUE_HEADERS


def response_headers(
    set_headers: Iterable[tuple[str, str]] = (),
    remove_headers: Iterable[str] = (),
    *,
    stream_body: bool,
) -> ProcessingResponse:
    return ProcessingResponse(
        response_headers=HeadersResponse(response=CommonResponse(header_mutation=mutation(set_headers, remove_headers))),
        mode_override=STREAM_RESPONSE if stream_body else SKIP_RESPONSE,
    )


def relayed_response_headers(set_headers: Iterable[tuple[str, str]] = (),
                             remove_headers: Iterable[str] = ()) -> ProcessingResponse:
    """The answer's headers; the filter relays its body from here on (RELAYED_RESPONSE)."""
    return ProcessingResponse(
        response_headers=HeadersResponse(response=CommonResponse(header_mutation=mutation(set_headers, remove_headers))),
        mode_override=RELAYED_RESPONSE,
    )


CONTINUE_TRAILERS = ProcessingResponse(response_trailers=TrailersResponse())



def replace_response_chunk(body: bytes) -> ProcessingResponse:
    return ProcessingResponse(
        response_body=BodyResponse(response=CommonResponse(body_mutation=BodyMutation(body=body)))
    )


def streamed_response_chunk(body: bytes, end_of_stream: bool, *,
                            metadata: Mapping[str, object] | None = None) -> ProcessingResponse:
    """A piece of a response body the filter relays (FULL_DUPLEX_STREAMED); `end_of_stream`
    ends the client's response, whether or not the provider's has ended."""
    return ProcessingResponse(
        response_body=BodyResponse(response=CommonResponse(body_mutation=BodyMutation(
            streamed_response=StreamedBodyResponse(body=body, end_of_stream=end_of_stream)))),
        dynamic_metadata=_metadata(metadata),
    )
