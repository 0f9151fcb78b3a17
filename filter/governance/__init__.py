"""Governance: named client keys, the models a key may use, rate limits, budgets and cost.

- `policy.py`: what the configuration says of each key and model (pure): effective limits and
  budgets by entity name, and which models, aliases and routes a key may use.
- `protocol.py`: the text format Envoy's governance extension (envoy/switchyard_governance.c)
  and the filter workers speak (pure).
- `service.py`: the workers' side of it: counts in the shared store (`filter/state/`), answers
  confirmations from the store's exact totals.
The Envoy side is rendered by `filter/render/governance.py`.
"""

from filter.governance.policy import ModelAccess, Policy, policies

__all__ = ["ModelAccess", "Policy", "policies"]
