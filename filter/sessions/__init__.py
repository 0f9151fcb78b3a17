"""Agent-aware preference routing: turn detection, what the router reads, session keys, pinning.

`pinning.Sessions` is what the request path calls; the other modules are pure functions of the
request body: `conversation` (one shape for every API family), `envelopes` (harness blocks in
user messages), `turns` (new user turn or loop step), `view` (the router's input), `keys`
(explicit and implicit sessions).
"""

from filter.sessions.keys import AFFINITY_HEADER
from filter.sessions.pinning import Outcome, Routed, Sessions

__all__ = ["AFFINITY_HEADER", "Outcome", "Routed", "Sessions"]
