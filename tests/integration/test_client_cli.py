"""`camera-service client` against a running service (the command runs its own loop, so it
runs in a worker thread here)."""

import asyncio

import orjson
import pytest
from conftest import mint_token, ws_url

from camera_service.cli import main
from camera_service.client_cli import parse_param


def test_parse_param_json_or_string():
    assert parse_param("device=/dev/video0") == ("device", "/dev/video0")
    assert parse_param("n=3") == ("n", 3)
    assert parse_param("flags=[1,2]") == ("flags", [1, 2])
    with pytest.raises(Exception, match="key=value"):
        parse_param("novalue")


async def test_call_prints_the_result(app, capsys):
    args = ["client", "--url", ws_url(app), "--token", mint_token("viewer"), "ping"]
    assert await asyncio.to_thread(main, args) == 0
    assert orjson.loads(capsys.readouterr().out) == "pong"


async def test_error_response_exits_1_with_the_error(app, capsys):
    args = [
        "client",
        "--url",
        ws_url(app),
        "--token",
        mint_token("viewer"),
        "get_camera_status",
        "device=/dev/video77",
    ]
    assert await asyncio.to_thread(main, args) == 1
    error = orjson.loads(capsys.readouterr().err)["error"]
    assert (error["code"], error["message"]) == (-1000, "Camera not found")
    assert error["data"]["device"] == "/dev/video77"


async def test_bad_token_exits_1(app, capsys):
    args = ["client", "--url", ws_url(app), "--token", "not-a-key", "ping"]
    assert await asyncio.to_thread(main, args) == 1
    assert orjson.loads(capsys.readouterr().err)["error"]["code"] == -32001


async def test_unreachable_service_exits_1(capsys, unused_tcp_port):
    args = ["client", "--url", f"ws://127.0.0.1:{unused_tcp_port}/ws", "ping"]
    assert await asyncio.to_thread(main, args) == 1
    assert capsys.readouterr().err.startswith("camera-service client: ")
