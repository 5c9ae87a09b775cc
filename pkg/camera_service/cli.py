"""`camera-service` command line: serve, check-config, token, apikey, cameras."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import orjson

from camera_service import __version__
from camera_service.config import ConfigError, load_config

CONFIG_HELP = (
    "TOML config file (default: ./conf/default.toml, then /etc/camera-service/config.toml)"
)


def _add_config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help=CONFIG_HELP)


def build_parser() -> argparse.ArgumentParser:
    from camera_service.auth.cli import add_apikey_parser, add_token_parser
    from camera_service.client_cli import add_client_parser

    parser = argparse.ArgumentParser(
        prog="camera-service",
        description="V4L2 camera discovery served over a WebSocket JSON-RPC 2.0 API.",
    )
    parser.add_argument("--version", action="version", version=f"camera-service {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    serve = sub.add_parser("serve", help="run the service in the foreground")
    _add_config_arg(serve)
    check = sub.add_parser("check-config", help="validate and print the effective configuration")
    _add_config_arg(check)
    for add in (add_token_parser, add_apikey_parser):
        _add_config_arg(add(sub))
    add_client_parser(sub)
    from camera_service.cameras.cli import add_cameras_parser

    _add_config_arg(add_cameras_parser(sub))
    return parser


def _load(args: argparse.Namespace):
    try:
        return load_config(args.config)
    except ConfigError as exc:
        print(f"camera-service: invalid configuration: {exc}", file=sys.stderr)
        return None
    except OSError as exc:
        print(f"camera-service: cannot read configuration: {exc}", file=sys.stderr)
        return None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "client":  # talks to a service; needs no local configuration
        from camera_service.client_cli import run_client

        return run_client(args)
    config = _load(args)
    if config is None:
        return 1
    if args.command == "check-config":
        print(orjson.dumps(config.to_dict(mask_secrets=True), option=orjson.OPT_INDENT_2).decode())
        print(f"configuration OK (source: {config.source or 'built-in defaults'})", file=sys.stderr)
        return 0
    if args.command == "serve":
        from camera_service.app import run

        return run(config, config.source)
    if args.command == "token":
        from camera_service.auth.cli import run_token

        return run_token(args, config.security)
    if args.command == "apikey":
        from camera_service.auth.cli import run_apikey

        return run_apikey(args, config.security)
    if args.command == "cameras":
        from camera_service.cameras.cli import run_cameras

        return run_cameras(args, config)
    raise AssertionError(f"unhandled command {args.command}")  # argparse rejects others
