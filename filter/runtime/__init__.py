"""Process management: the `switchyard` command, the supervisor that runs Envoy and the filter
workers, one worker's start-up, and the merged /metrics endpoint. Nothing here is on the
per-request path (that is `filter/processor.py` and the modules it calls)."""
