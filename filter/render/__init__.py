"""Envoy configuration rendered from the typed configuration: the bootstrap, the reloadable
routes and clusters, the include fragments, and the fast path's routes (what Envoy serves alone).
Pure functions: a `Config` in, Envoy configuration dicts out; `envoy --mode validate` judges them."""
