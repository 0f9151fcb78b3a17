"""`previous_response_id` for answers the gateway translated: kept in the shared store, read back.

A Responses answer the gateway made (a Chat Completions or Anthropic model served a Responses
client) is kept, unless the request said `store: false`, as the conversation it ends: the
request's input items (a previous response's included) and the answer's output items. A follow-up
that names it gets those items in front of its own input, whichever provider serves it. An id the
gateway does not hold goes through unchanged to a provider with the Responses API (OpenAI keeps
its own), and is a 400 for any other (`filter.translation.responses_common.check_no_state`).

Scoped: with client keys, an answer is kept under the name of the key that asked, and only that key
finds it again (another key's `previous_response_id` is as unknown as a made-up one).

Bounded: `TABLE` keeps at most `max_entries` conversations of at most `max_value_bytes` each, for
`ttl_s` after they were written (reading does not extend it); a longer one is not kept.
"""

from __future__ import annotations

import logging

import orjson

from filter.errors import GatewayError
from filter.response_rewriter import ResponseRewriter
from filter.state import Store, StoreError, Table, ValueTooLarge

log = logging.getLogger("switchyard.responses")

TABLE = Table("responses", ttl_s=3600.0, max_entries=1000, refresh_on_read=False, max_value_bytes=2 * 1024 * 1024)


class StoredResponses:
    def __init__(self, store: Store | None):
        self.store = store  # None: nothing is kept (tests and tools without a runtime directory)

    async def expand(self, body: dict, scope: str | None = None) -> None:
        """Put the conversation a known `previous_response_id` names in front of `input`;
        `scope`: the client key's name (only its own answers are found)."""
        previous = body.get("previous_response_id")
        if previous is None or self.store is None:
            return
        try:
            stored = await self.store.get(TABLE, scoped(previous, scope))
        except ValueError:  # not a key the store could hold: not one of ours
            return
        except StoreError as exc:
            log.warning("stored response %s could not be read: %s", previous[:64], exc)
            raise GatewayError(503, "stored responses cannot be read right now; send the conversation as input "
                                    "or retry", code="store_unavailable", param="previous_response_id") from None
        if stored is None:
            return
        items = body.get("input")
        body["input"] = [*orjson.loads(stored), *([{"role": "user", "content": items}]
                                                   if isinstance(items, str) else items or ())]
        del body["previous_response_id"]

    async def keep(self, rewriter: ResponseRewriter | None, scope: str | None = None) -> None:
        """Keep a finished translated Responses answer before its last bytes reach the client, so a
        follow-up sent as soon as the client has it finds it."""
        if rewriter is None or rewriter.finished_response is None or self.store is None:
            return
        response, rewriter.finished_response = rewriter.finished_response, None
        context = rewriter.responses
        if context is None or not context.store:
            return
        conversation = orjson.dumps([*context.history, *response["output"]])
        try:
            await self.store.put(TABLE, scoped(response["id"], scope), conversation)
        except ValueTooLarge:
            log.info("response %s not kept: its conversation is %d bytes", response["id"], len(conversation))
        except StoreError as exc:
            log.warning("response %s not kept: %s", response["id"], exc)


def scoped(response_id: str, scope: str | None) -> str:
    """The store key of a response: its id, behind the client key's name when there is one."""
    if not isinstance(response_id, str):
        raise ValueError("a response id is a string")
    return response_id if scope is None else f"{scope}\x1f{response_id}"
