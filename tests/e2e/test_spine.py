"""The gateway spine end to end: the openai SDK → real Envoy → filter → stand-in providers."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.gateway import Gateway
from tests.standins import openai_reply

OPENAI_KEY = "sk-upstream-openai-7f3a9"
GROQ_KEY = "gsk-upstream-groq-51c2e"
AZURE_KEY = "azure-upstream-key-0d4b"
CLIENT_KEY = "client-key-never-forwarded"


@pytest.fixture(scope="module")
def gateway(upstream, tmp_path_factory):
    config = {
        "llm_providers": [
            {"model": "openai/gpt-4o", "access_key": "$TEST_OPENAI_KEY", "base_url": f"{upstream.url}/v1", "default": True},
            {"model": "openai/gpt-4o-mini", "access_key": "$TEST_OPENAI_KEY", "base_url": f"{upstream.url}/v1"},
            {"model": "groq/llama-3.3-70b", "access_key": GROQ_KEY, "base_url": f"{upstream.url}/openai/v1"},
            {"model": "azure_openai/prod-gpt4", "access_key": AZURE_KEY, "base_url": upstream.url,
             "api_version": "2024-10-21"},
            {"model": "local/qwen-coder", "base_url": f"{upstream.url}/custom/api"},
            {"model": "echo/demo"},
        ],
        # `llama-3.3-70b` is also the bare model id of groq/llama-3.3-70b, which comes first (rule 2).
        "model_aliases": {"fast-model": {"target": "gpt-4o-mini"}, "team-default": {"target": "fast-model"},
                          "llama-3.3-70b": {"target": "gpt-4o-mini"}},
        "routing": {"engine": "none"},
    }
    with Gateway(config, tmp_path_factory.mktemp("spine"), env={"TEST_OPENAI_KEY": OPENAI_KEY}) as gw:
        yield gw


@pytest.fixture
def client(gateway):
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=CLIENT_KEY, max_retries=0)


HELLO = [{"role": "user", "content": "hello"}]


def ask(client, model, **extra):
    raw = client.chat.completions.with_raw_response.create(model=model, messages=HELLO, **extra)
    return raw.headers, raw.parse()


# ---------------------------------------------------------------- precedence rules


def test_rule1_provider_slash_model_is_served_by_that_entry(client, fresh):
    headers, completion = ask(client, "openai/gpt-4o-mini")
    assert headers["x-switchyard-model"] == "openai/gpt-4o-mini"
    assert completion.choices[0].message.content == "openai stand-in answering as gpt-4o-mini"
    (request,) = fresh.received
    assert request.json["model"] == "gpt-4o-mini"  # the provider's own id, not the slug
    assert request.path == "/v1/chat/completions"


def test_rule2_bare_model_id_of_one_provider_beats_an_alias_of_the_same_name(client, fresh):
    headers, _ = ask(client, "llama-3.3-70b")
    assert headers["x-switchyard-model"] == "groq/llama-3.3-70b"
    (request,) = fresh.received
    assert request.json["model"] == "llama-3.3-70b"
    assert request.path == "/openai/v1/chat/completions"


def test_rule3_alias_and_alias_of_alias(client, fresh):
    headers, _ = ask(client, "fast-model")
    assert headers["x-switchyard-model"] == "openai/gpt-4o-mini"
    headers, _ = ask(client, "team-default")
    assert headers["x-switchyard-model"] == "openai/gpt-4o-mini"
    assert [r.json["model"] for r in fresh.received] == ["gpt-4o-mini", "gpt-4o-mini"]


@pytest.mark.parametrize("body_model", [None, ""])
def test_rule5_no_model_goes_to_the_default(gateway, fresh, body_model):
    body = {"messages": HELLO}
    if body_model is not None:
        body["model"] = body_model
    response = httpx.post(f"{gateway.url}/v1/chat/completions", json=body)
    assert response.status_code == 200
    assert response.headers["x-switchyard-model"] == "openai/gpt-4o"
    assert fresh.received[0].json["model"] == "gpt-4o"


def test_rule6_unknown_model_is_404_listing_models_and_nothing_goes_upstream(client, fresh):
    with pytest.raises(openai.NotFoundError) as caught:
        ask(client, "gpt-9")
    error = caught.value.body
    assert error["code"] == "model_not_found"
    assert error["type"] == "invalid_request_error"
    for name in ("openai/gpt-4o", "groq/llama-3.3-70b", "fast-model", "team-default"):
        assert name in error["message"]
    assert fresh.received == []


# ---------------------------------------------------------------- rewriting


# The client's key in every header a provider could read it from.
CLIENT_CREDENTIALS = {"x-api-key": CLIENT_KEY, "api-key": CLIENT_KEY}


def test_upstream_gets_the_provider_key_never_the_clients(client, fresh):
    """Also where no provider key overwrites the client's: a provider without a key, and the
    headers another provider family reads."""
    for model in ("openai/gpt-4o", "groq/llama-3.3-70b", "azure_openai/prod-gpt4", "local/qwen-coder"):
        ask(client, model, extra_headers=CLIENT_CREDENTIALS)
    openai_request, groq_request, azure_request, local_request = fresh.received
    assert openai_request.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert groq_request.headers["authorization"] == f"Bearer {GROQ_KEY}"
    assert azure_request.headers["api-key"] == AZURE_KEY
    for request in fresh.received:
        assert CLIENT_KEY not in json.dumps(request.headers)
        assert "x-switchyard-provider" not in request.headers
    for request in (openai_request, groq_request, local_request):
        assert "x-api-key" not in request.headers and "api-key" not in request.headers
    assert "authorization" not in azure_request.headers and "authorization" not in local_request.headers


def test_base_url_path_prefix_is_kept(client, fresh):
    ask(client, "groq/llama-3.3-70b")
    ask(client, "local/qwen-coder")
    assert [r.path for r in fresh.received] == ["/openai/v1/chat/completions", "/custom/api/chat/completions"]
    # A provider with no key configured gets no Authorization header at all.
    assert "authorization" not in fresh.received[1].headers


def test_azure_deployment_path_api_version_and_api_key_header(client, fresh):
    headers, _ = ask(client, "azure_openai/prod-gpt4")
    assert headers["x-switchyard-model"] == "azure_openai/prod-gpt4"
    (request,) = fresh.received
    assert request.path == "/openai/deployments/prod-gpt4/chat/completions?api-version=2024-10-21"
    assert request.headers["api-key"] == AZURE_KEY
    assert "authorization" not in request.headers


def test_other_request_fields_pass_through_unchanged(client, fresh):
    ask(client, "openai/gpt-4o", temperature=0.25, max_tokens=33, user="u-1")
    body = fresh.received[0].json
    assert (body["temperature"], body["max_tokens"], body["user"]) == (0.25, 33, "u-1")
    assert body["messages"] == HELLO


# ---------------------------------------------------------------- streaming


def test_streaming_passes_through_chunk_by_chunk(client, fresh):
    """The provider sends the first word, then holds the rest until the client has read that
    word: a gateway that buffered the stream would never deliver it (the client times out)."""
    replies = []

    def held_stream(request):
        reply = openai_reply(request, text="one two three four")
        reply.hold_after, reply.hold_s = 2, 60  # the role chunk and "one"
        replies.append(reply)
        return reply

    fresh.behaviour = held_stream
    stream = client.with_options(timeout=15).chat.completions.create(model="openai/gpt-4o", messages=HELLO, stream=True)
    try:
        words = []
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                words.append(chunk.choices[0].delta.content)
                if len(words) == 1:
                    assert not replies[0].release.is_set()  # the rest is still held upstream
                    replies[0].release.set()
    finally:
        for reply in replies:
            reply.release.set()
    assert words == ["one", " two", " three", " four"]


def test_streaming_carries_the_model_header(gateway, fresh):
    with httpx.stream("POST", f"{gateway.url}/v1/chat/completions",
                      json={"model": "fast-model", "messages": HELLO, "stream": True}) as response:
        body = response.read()
    assert response.headers["x-switchyard-model"] == "openai/gpt-4o-mini"
    assert response.headers["content-type"].startswith("text/event-stream")
    assert body.rstrip().endswith(b"data: [DONE]")


# ---------------------------------------------------------------- echo, models


def test_echo_provider_names_the_chosen_model(client, fresh):
    headers, completion = ask(client, "echo/demo")
    assert headers["x-switchyard-model"] == "echo/demo"
    assert "echo/demo" in completion.choices[0].message.content
    chunks = list(client.chat.completions.create(model="echo/demo", messages=HELLO, stream=True))
    assert [len(c.choices) for c in chunks] == [1] * len(chunks)  # no usage chunk: not asked for
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text.startswith("[echo/demo]") and text.endswith("hello")
    chunks = list(client.chat.completions.create(model="echo/demo", messages=HELLO, stream=True,
                                                 stream_options={"include_usage": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == len(text.split(" "))
    assert fresh.received == []


def test_models_endpoint_lists_providers_and_aliases(client):
    ids = [m.id for m in client.models.list().data]
    assert ids == ["openai/gpt-4o", "openai/gpt-4o-mini", "groq/llama-3.3-70b", "azure_openai/prod-gpt4",
                   "local/qwen-coder", "echo/demo", "fast-model", "llama-3.3-70b", "team-default"]  # the file sorts aliases


# ---------------------------------------------------------------- bad requests


@pytest.mark.parametrize(
    "body, needle",
    [
        (b'{"model": "openai/gpt-4o", "messages": [', "not valid JSON"),
        (b"[1, 2, 3]", "must be a JSON object"),
        (b'"just a string"', "must be a JSON object"),
        (b'{"model": "openai/gpt-4o"}', "'messages' is required"),
        (b'{"model": "openai/gpt-4o", "messages": []}', "at least one message"),
        (b'{"model": 42, "messages": [{"role": "user", "content": "x"}]}', "'model' must be a string"),
        (b'{"messages": "hello"}', "'messages' must be an array"),
        (b'{"messages": [{"role": "user", "content": "x"}], "stream": "yes"}', "'stream' must be a boolean"),
        (b'{"messages": [{"role": "user", "content": "caf\xe9"}]}', "not valid UTF-8"),
    ],
)
def test_bad_request_is_400_in_openai_shape_and_nothing_goes_upstream(gateway, fresh, body, needle):
    response = httpx.post(f"{gateway.url}/v1/chat/completions", content=body,
                          headers={"content-type": "application/json"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert needle in error["message"]
    assert error["type"] == "invalid_request_error"
    assert fresh.received == []


def test_bad_request_reaches_the_sdk_as_bad_request_error(client, fresh):
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="openai/gpt-4o", messages=[])
    assert fresh.received == []
