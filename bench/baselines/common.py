"""What both baseline servers share: config reading, JWT check, the JSON-RPC answers.

Deliberately straightforward Python: decode every request into a dict with orjson, look at it
with dict lookups, build a response dict and encode it. This is the code a careful author
writes first; the real server is measured against it.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import tomllib
from typing import Any

import jwt
import orjson

from bench.cameras import camera_list_result
from bench.common import check_loopback

ROLE_LEVELS = {"viewer": 1, "operator": 2, "admin": 3}
PERMISSIONS = {1: ["view"], 2: ["view", "control"], 3: ["view", "control", "admin"]}
CAMERA_LIST = camera_list_result(4)


def load_settings(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--config", required=True, help="TOML file ([server] host/port, [security] jwt_secret)"
    )
    parser.add_argument("--no-uvloop", action="store_true", help="use the default asyncio loop")
    parser.add_argument(
        "--no-aiofastnet",
        action="store_true",
        help="picows: use the loop's own transports instead of aiofastnet",
    )
    args = parser.parse_args(argv)
    with open(args.config, "rb") as f:
        doc = tomllib.load(f)
    server, security = doc.get("server", {}), doc.get("security", {})
    return {
        "host": check_loopback(server.get("host", "127.0.0.1")),
        "port": int(server.get("port", 8002)),
        "secret": security["jwt_secret"],
        "uvloop": not args.no_uvloop,
        "aiofastnet": not args.no_aiofastnet,
    }


def install_loop(use_uvloop: bool) -> None:
    if use_uvloop:
        try:
            import uvloop
        except ImportError:
            return
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _error(code: int, message: str, request_id: Any, reason: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if reason:
        error["data"] = {"reason": reason}
    return {"jsonrpc": "2.0", "error": error, "id": request_id}


class Session:
    """Per-connection state: the role after `authenticate` (0 = none)."""

    __slots__ = ("role_level", "secret")

    def __init__(self, secret: str):
        self.role_level = 0
        self.secret = secret

    def authenticate(self, params: Any, request_id: Any) -> dict[str, Any]:
        token = params.get("auth_token", params.get("token")) if type(params) is dict else None
        if type(token) is not str:
            return _error(
                -32602, "Invalid parameters", request_id, "auth_token (or token) is required"
            )
        try:
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=["HS256"],
                options={"require": ["exp", "user_id", "role"]},
            )
            level = ROLE_LEVELS[claims["role"]]
        except Exception:  # noqa: BLE001 - any bad token is an authentication failure
            return _error(-32001, "Authentication failed", request_id, "invalid token")
        self.role_level = level
        return {
            "jsonrpc": "2.0",
            "result": {
                "authenticated": True,
                "role": claims["role"],
                "permissions": PERMISSIONS[level],
                "user_id": claims["user_id"],
                "expires_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(claims["exp"])),
                "session_id": "baseline",
                "auth_method": "jwt",
            },
            "id": request_id,
        }

    def answer(self, req: Any) -> dict[str, Any] | None:
        """The response dict for one decoded request (None for a notification)."""
        if type(req) is not dict:
            return _error(-32600, "Invalid Request", None, "a request must be a JSON object")
        request_id = req.get("id")
        method = req.get("method")
        if req.get("jsonrpc") != "2.0" or type(method) is not str or not method:
            return _error(-32600, "Invalid Request", request_id, "bad envelope")
        if method == "authenticate":
            response = self.authenticate(req.get("params", {}), request_id)
        elif method in ("ping", "get_camera_list"):
            if self.role_level < 1:
                response = _error(
                    -32001,
                    "Authentication required",
                    request_id,
                    "call authenticate first, or pass auth_token in params",
                )
            elif method == "ping":
                response = {"jsonrpc": "2.0", "result": "pong", "id": request_id}
            else:
                response = {"jsonrpc": "2.0", "result": CAMERA_LIST, "id": request_id}
        else:
            response = _error(
                -32601, "Method not found", request_id, f"unknown method: {method[:100]}"
            )
        return response if "id" in req else None

    def handle(self, payload: bytes | str) -> bytes | None:
        try:
            doc = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return orjson.dumps(_error(-32700, "Parse error", None, "invalid JSON"))
        if type(doc) is list:
            parts = [self.answer(item) for item in doc]
            out = [p for p in parts if p is not None]
            return orjson.dumps(out) if out else None
        response = self.answer(doc)
        return None if response is None else orjson.dumps(response)
