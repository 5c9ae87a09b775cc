"""The fleet bridge's pure parts (PROTOCOL 12), no broker: topic names, node ids, the
reconnect schedule over an hour, Home Assistant discovery configs, command parsing and the
answers commands get from real handlers registered in a real MethodRegistry."""

from __future__ import annotations

import orjson
import pytest

from camera_service.fleet import commands
from camera_service.fleet.topics import (
    BACKOFF_MAX,
    Topics,
    backoff_delays,
    discovery_configs,
    discovery_topics,
    resolve_node_id,
)
from camera_service.rpc.errors import CAMERA_NOT_FOUND, RpcError, invalid_params
from camera_service.rpc.registry import MethodRegistry

TOPICS = Topics("camera-service", "box1", "homeassistant")


def test_topic_names():
    assert TOPICS.availability == "camera-service/box1/availability"
    assert TOPICS.info == "camera-service/box1/info"
    assert TOPICS.events == "camera-service/box1/events"
    assert TOPICS.state("camera0") == "camera-service/box1/cameras/camera0/state"
    assert TOPICS.snapshot("camera0") == "camera-service/box1/cameras/camera0/snapshot"
    assert TOPICS.command("camera0") == "camera-service/box1/cameras/camera0/command"
    assert TOPICS.command_result("camera0") == "camera-service/box1/cameras/camera0/command/result"
    assert TOPICS.all_commands == "camera-service/box1/cameras/+/command"


@pytest.mark.parametrize(
    ("topic", "camera"),
    [
        ("camera-service/box1/cameras/camera3/command", "camera3"),
        ("camera-service/box1/cameras/camera3/command/result", None),
        ("camera-service/box1/cameras/camera/command", None),
        ("camera-service/box1/cameras/../command", None),
        ("camera-service/box1/cameras/camera1/x/command", None),
        ("camera-service/box2/cameras/camera3/command", None),
        ("camera-service/box1/cameras/camera0123456789/command", None),
    ],
)
def test_camera_of_accepts_only_this_nodes_camera_topics(topic, camera):
    assert TOPICS.camera_of(topic, "command") == camera


def test_node_id_defaults_to_the_sanitized_host_name():
    assert resolve_node_id("edge-7") == "edge-7"
    assert resolve_node_id(None, "box.local") == "box_local"
    assert resolve_node_id(None, "kamera-øst 2") == "kamera-_st_2"
    assert resolve_node_id(None, "..") == "camera-service"


def test_backoff_doubles_from_1_s_and_caps_at_60_s_over_an_hour():
    delays = backoff_delays()
    assert [next(delays) for _ in range(9)] == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    # An hour of an unreachable broker: once a minute after the first two minutes, never
    # faster, never slower.
    delays, elapsed, attempts = backoff_delays(), 0.0, 0
    while elapsed < 3600:
        delay = next(delays)
        assert 1 <= delay <= BACKOFF_MAX
        elapsed += delay
        attempts += 1
    assert attempts == 6 + -(-(3600 - 63) // 60)


def test_discovery_configs_are_stable_and_point_at_the_nodes_topics():
    configs = dict(
        discovery_configs(TOPICS, "camera0", "HD Webcam", "usb-0000:00:14.0-1", "uvcvideo", "1.0")
    )
    assert list(configs) == discovery_topics(TOPICS, "camera0")
    assert list(configs) == [
        "homeassistant/camera/box1_camera0/config",
        "homeassistant/binary_sensor/box1_camera0_connected/config",
        "homeassistant/binary_sensor/box1_camera0_recording/config",
    ]
    image, connected, recording = configs.values()
    assert [c["unique_id"] for c in configs.values()] == [
        "box1_camera0_camera",
        "box1_camera0_connected",
        "box1_camera0_recording",
    ]
    assert image["topic"] == TOPICS.snapshot("camera0")
    assert connected["state_topic"] == recording["state_topic"] == TOPICS.state("camera0")
    for config in configs.values():
        assert config["availability_topic"] == TOPICS.availability
        assert config["device"]["name"] == "HD Webcam"
        assert config["device"]["identifiers"] == ["camera-service_box1_usb-0000:00:14.0-1"]
        orjson.dumps(config)  # JSON as it is
    # Same input, same configs: nothing time- or run-dependent.
    assert (
        dict(
            discovery_configs(
                TOPICS, "camera0", "HD Webcam", "usb-0000:00:14.0-1", "uvcvideo", "1.0"
            )
        )
        == configs
    )
    # A camera without bus info still gets a device identifier of its own.
    bare = discovery_configs(TOPICS, "camera4", "", "", "", "1.0")[0][1]
    assert bare["device"] == {**bare["device"], "name": "camera4"}
    assert bare["device"]["identifiers"] == ["camera-service_box1_camera4"]


def registry_with_snapshot() -> MethodRegistry:
    """A real registry with a `take_snapshot` handler of the JSON-RPC shape (ctx, params)."""

    async def take_snapshot(ctx, params):
        if params["device"] != "camera0":
            raise RpcError(CAMERA_NOT_FOUND, data={"reason": "no camera", "device": "x"})
        if "quality" in params and params["quality"] != 50:
            raise invalid_params("quality must be an integer 1-100 (higher is better)")
        return {"device": params["device"], "cid": bool(ctx.correlation_id)}

    def stop_recording(ctx, params):
        raise ValueError("a bug in a handler")

    registry = MethodRegistry()
    registry.add("take_snapshot", take_snapshot, "operator")
    registry.add("stop_recording", stop_recording, "operator")
    return registry


@pytest.mark.parametrize(
    ("payload", "answer"),
    [
        (
            b'{"action":"snapshot","params":{"quality":50},"id":"x"}',
            {"id": "x", "result": {"device": "camera0", "cid": True}},
        ),
        (b'{"action":"snapshot"}', {"id": None, "result": {"device": "camera0", "cid": True}}),
        (
            b'{"action":"snapshot","params":null,"id":[1]}',
            {"id": [1], "result": {"device": "camera0", "cid": True}},
        ),
        (
            b'{"action":"snapshot","params":{"device":"camera9"},"id":2}',
            {"id": 2, "result": {"device": "camera0", "cid": True}},
        ),
    ],
)
async def test_command_results(payload, answer):
    out = await commands.run(registry_with_snapshot().handler, "camera0", payload)
    assert orjson.loads(out) == answer


@pytest.mark.parametrize(
    ("payload", "code", "command_id"),
    [
        (b"", -32700, None),
        (b"\xff\xfe", -32700, None),
        (b'"snapshot"', -32600, None),
        (b"null", -32600, None),
        (b'{"action":7,"id":1}', -32600, 1),
        (b'{"action":"","id":1}', -32600, 1),
        (b'{"action":"format_disk","id":1}', -32601, 1),
        (b'{"action":"take_snapshot","id":1}', -32601, 1),  # actions, not method names
        (b'{"action":"snapshot","params":"q=1","id":1}', -32602, 1),
        (b'{"action":"snapshot","params":{"quality":7},"id":1}', -32602, 1),
        # Registered handlers only: a build without recordings says so.
        (b'{"action":"start_recording","id":3}', -32601, 3),
        # A failing handler is -32603 without details.
        (b'{"action":"stop_recording","id":4}', -32603, 4),
    ],
)
async def test_command_errors(payload, code, command_id):
    out = orjson.loads(await commands.run(registry_with_snapshot().handler, "camera0", payload))
    assert out["id"] == command_id
    assert out["error"]["code"] == code
    assert "Traceback" not in str(out) and "bug" not in str(out)


async def test_unknown_camera_code_comes_from_the_handler():
    out = orjson.loads(
        await commands.run(registry_with_snapshot().handler, "camera9", b'{"action":"snapshot"}')
    )
    assert out["error"]["code"] == CAMERA_NOT_FOUND
