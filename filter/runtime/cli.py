"""The `switchyard` command: up, validate, render, workers, health, eval."""

from __future__ import annotations

import argparse
import sys

from filter.config import ConfigError, load_config


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["eval"]:
        # The harness owns its arguments; it lives with the routing engines.
        from router_model.evaluate import main as evaluate

        return evaluate(argv[1:])

    parser = argparse.ArgumentParser(prog="switchyard", description="LLM gateway: Envoy + ext_proc filter")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="run Envoy and the filter workers in the foreground")
    up.add_argument("config")
    validate = commands.add_parser("validate", help="check a configuration file")
    validate.add_argument("config")
    workers = commands.add_parser("workers", help="run only the filter workers and /metrics (Envoy runs elsewhere)")
    workers.add_argument("config")
    render = commands.add_parser("render", help="print the Envoy bootstrap for a configuration")
    render.add_argument("config")
    render.add_argument("--fragments", action="store_true",
                        help="print the pieces to include in an Envoy config of your own instead")
    render.add_argument("--keys-dir", default=None, metavar="DIR",
                        help="where Envoy reads provider keys, one file per `access_key: $NAME` named NAME "
                             "(default: /var/run/secrets/switchyard/provider-keys)")
    health = commands.add_parser("health", help="exit 0 when every filter worker answers gRPC health as serving "
                                               "(a probe for `switchyard workers` in its own container)")
    health.add_argument("config")
    commands.add_parser("eval", help="score a routing engine on labelled cases (see `switchyard eval -h`)")
    args = parser.parse_args(argv)

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"switchyard: {exc}", file=sys.stderr)
        return 2
    for warning in config.warnings:  # Plano keys that are accepted but not implemented: never silent
        print(f"switchyard: warning: {warning}", file=sys.stderr)

    if args.command == "validate":
        print(f"{args.config}: ok ({len(config.providers)} providers, {len(config.aliases)} aliases, "
              f"{len(config.routes)} routes)")
        return 0
    if args.command == "health":
        from filter.runtime.health import check_workers

        problems = check_workers(config)
        for problem in problems:
            print(f"switchyard: {problem}", file=sys.stderr)
        return 1 if problems else 0
    if args.command == "render":
        import yaml

        from pathlib import Path

        from filter.render.bootstrap import DEFAULT_KEYS_DIR, render_fragments, render_yaml
        from filter.render.fast_path import literal_key_providers

        keys_dir = Path(args.keys_dir) if args.keys_dir else DEFAULT_KEYS_DIR
        for provider in literal_key_providers(config):  # the fast path needs a key file
            print(f"switchyard: {provider.slug}: its access_key is written in the configuration, not read from "
                  f"$NAME, so Envoy has no file to read it from ({keys_dir}/NAME): its requests go through "
                  "the filter", file=sys.stderr)
        if args.fragments:
            sys.stdout.write(yaml.safe_dump(render_fragments(config, keys_dir), sort_keys=False))
        else:
            sys.stdout.write(render_yaml(config, keys_dir))
        return 0
    from filter.runtime.supervisor import Supervisor

    return Supervisor(config, args.config, with_envoy=args.command == "up").run()


if __name__ == "__main__":
    raise SystemExit(main())
