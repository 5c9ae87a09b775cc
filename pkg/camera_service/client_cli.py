"""`camera-service client`: call a method or watch notifications from the shell."""

from __future__ import annotations

import argparse
import asyncio
import ssl
import sys
from typing import Any

import orjson

from camera_service.client import ConnectionClosed, RpcCallError, RpcClient


def parse_param(text: str) -> tuple[str, Any]:
    """`key=value`; the value is JSON when it parses (numbers, lists, true), else a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    try:
        return key, orjson.loads(raw)
    except orjson.JSONDecodeError:
        return key, raw


def add_client_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "client",
        help="call a JSON-RPC method, or `watch` for notifications",
        description="Examples: camera-service client --token T get_camera_status "
        "device=/dev/video0   |   camera-service client --token T watch",
    )
    parser.add_argument("--url", default="ws://127.0.0.1:8002/ws", help="service URL")
    parser.add_argument("--token", help="JWT or API key (authenticates first)")
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="wss:// without certificate verification (self-signed test setups)",
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per call")
    parser.add_argument("method", help="method name, or `watch`")
    parser.add_argument("params", nargs="*", type=parse_param, metavar="key=value")
    return parser


async def _run(args: argparse.Namespace) -> int:
    context = None
    if args.url.startswith("wss://"):
        context = ssl.create_default_context()
        if args.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
    client = await RpcClient.connect(args.url, ssl=context, timeout=args.timeout)
    try:
        if args.token:
            await client.authenticate(args.token)
        if args.method == "watch":
            print("watching notifications; Ctrl-C to stop", file=sys.stderr, flush=True)
            async for note in client.notifications():
                print(orjson.dumps(note).decode(), flush=True)
            return 0
        result = await client.call(args.method, dict(args.params), timeout=args.timeout)
        print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
        return 0
    finally:
        await client.close()


def run_client(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_run(args))
    except RpcCallError as exc:
        error = {"code": exc.code, "message": exc.message, "data": exc.data}
        print(orjson.dumps({"error": error}).decode(), file=sys.stderr)
        return 1
    except (TimeoutError, ConnectionClosed, OSError) as exc:
        print(f"camera-service client: {exc or type(exc).__name__}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
