"""The `token` and `apikey` commands of the camera-service CLI.

The main CLI builds the parsers with add_token_parser / add_apikey_parser, loads the config and
calls run_token / run_apikey with its `[security]` section. Both return the process exit code.

Output contract (scripts rely on it):
- `token` prints the JWT alone on stdout.
- `apikey create` prints the new key alone on stdout (so `KEY=$(camera-service apikey create
  ...)` works) and the key id with a reminder that the key is shown only once on stderr.
- `apikey list` prints a table, or with `--json` a JSON array of the entries without hashes.
- `apikey revoke KEY_ID` prints "revoked KEY_ID"; an unknown id exits 1.
Errors go to stderr with exit code 1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import Any, TextIO

from .api_keys import ApiKeyStore, ApiKeyStoreError
from .jwt_auth import JwtVerifier
from .roles import ROLE_NAMES
from .secrets import JwtSecretError, resolve_jwt_secret

_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_TTL_RE = re.compile(r"(\d{1,12})([smhd]?)")


def parse_ttl(text: str) -> int:
    """`90s`, `15m`, `24h`, `7d` or plain seconds, as seconds; argparse-friendly errors."""
    match = _TTL_RE.fullmatch(text.strip().lower())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}: use seconds or a number with s, m, h or d (e.g. 24h)"
        )
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise argparse.ArgumentTypeError("duration must be greater than zero")
    return seconds


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of days, got {text!r}") from None
    if not 1 <= value <= 36500:
        raise argparse.ArgumentTypeError("days must be from 1 to 36500")
    return value


def add_token_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "token",
        help="print a JWT signed with the server's secret",
        description="Mint a JWT that this server accepts (same secret resolution as `serve`).",
    )
    parser.add_argument("--role", required=True, choices=ROLE_NAMES)
    parser.add_argument("--user", required=True, help="user_id claim")
    parser.add_argument(
        "--ttl",
        type=parse_ttl,
        default=parse_ttl("24h"),
        help="lifetime: seconds or 90s / 15m / 24h / 7d (default 24h)",
    )
    return parser


def run_token(
    args: argparse.Namespace,
    security: Any,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
    env: Any = None,
) -> int:
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    try:
        secret = resolve_jwt_secret(security, env)
        verifier = JwtVerifier(
            secret.value,
            getattr(security, "jwt_algorithms", ("HS256",)),
            getattr(security, "jwt_leeway", 0.0),
        )
        token = verifier.mint(args.user, args.role, args.ttl)
    except (JwtSecretError, ValueError) as exc:
        print(f"error: {exc}", file=err)
        return 1
    print(token, file=out)
    return 0


def add_apikey_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "apikey", help="manage API keys", description="Create, list and revoke API keys."
    )
    commands = parser.add_subparsers(dest="apikey_command", metavar="COMMAND", required=True)

    create = commands.add_parser("create", help="create a key and print it once")
    create.add_argument("--role", required=True, choices=ROLE_NAMES)
    create.add_argument("--name", required=True, help="label shown in listings and logs")
    create.add_argument(
        "--expires-days",
        "--expires",
        dest="expires_days",
        type=_positive_int,
        default=None,
        metavar="DAYS",
        help="days until the key expires (default: never)",
    )

    listing = commands.add_parser("list", help="list keys (never the keys themselves)")
    listing.add_argument("--json", action="store_true", help="print a JSON array")

    revoke = commands.add_parser("revoke", help="revoke a key; takes effect without restart")
    revoke.add_argument("key_id")
    return parser


def run_apikey(
    args: argparse.Namespace, security: Any, *, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    try:
        store = ApiKeyStore(os.fspath(security.api_keys_file))
        if args.apikey_command == "create":
            key, entry = store.create(args.role, args.name, args.expires_days)
            print(key, file=out)
            expiry = entry.expires_at or "never"
            print(
                f"created API key {entry.key_id} (role {entry.role}, expires {expiry}); "
                "the key above is shown only this once",
                file=err,
            )
            return 0
        if args.apikey_command == "list":
            _print_list(store, args.json, out)
            return 0
        if args.apikey_command == "revoke":
            if not store.revoke(args.key_id):
                print(f"error: no API key with id {args.key_id!r}", file=err)
                return 1
            print(f"revoked {args.key_id}", file=out)
            return 0
    except (ApiKeyStoreError, ValueError) as exc:
        print(f"error: {exc}", file=err)
        return 1
    print(f"error: unknown apikey command {args.apikey_command!r}", file=err)
    return 2


def _print_list(store: ApiKeyStore, as_json: bool, out: TextIO) -> None:
    entries = store.list()
    if as_json:
        rows = [dict(e.to_public(), status=e.status()) for e in entries]
        print(json.dumps(rows, indent=2), file=out)
        return
    header = ("KEY_ID", "NAME", "ROLE", "STATUS", "CREATED", "EXPIRES")
    table = [header] + [
        (e.key_id, e.name, e.role, e.status(), e.created_at, e.expires_at or "never")
        for e in entries
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip(), file=out)
