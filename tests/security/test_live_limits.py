"""Rate limits reload live and apply to connections that are already open (PROTOCOL 4.5, 8)."""

import asyncio

from conftest import merge, mint_token

from camera_service.app import Application
from camera_service.client import RpcCallError, RpcClient
from camera_service.config import load_config


async def _wait_for(predicate, seconds=3.0):
    for _ in range(int(seconds / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the configuration was not reloaded")


async def test_rate_limit_switched_on_and_off_for_open_connections(tmp_path, test_overrides):
    config_file = tmp_path / "live.toml"
    config_file.write_text("[security]\nrate_limit_rpm = 0\n")
    overrides = merge(test_overrides, {})
    app = Application(
        load_config(config_file, env={}, overrides=overrides), config_path=str(config_file), env={}
    )
    await app.start()
    client = await RpcClient.connect(f"ws://127.0.0.1:{app.port}/ws")
    try:
        await client.authenticate(mint_token("viewer"))
        for _ in range(300):  # limiting off: far beyond the default burst
            assert await client.call("ping") == "pong"

        config_file.write_text("[security]\nrate_limit_rpm = 60\nrate_limit_burst = 2\n")
        await _wait_for(lambda: app.config.security.rate_limit_rpm == 60)
        assert await client.call("ping") == "pong"
        assert await client.call("ping") == "pong"
        try:
            await client.call("ping")
        except RpcCallError as exc:
            assert (exc.code, exc.message) == (-32002, "Rate limit exceeded")
            assert exc.data["retry_after"] > 0
        else:
            raise AssertionError("the third ping passed a burst of 2")

        config_file.write_text("[security]\nrate_limit_rpm = 0\n")
        await _wait_for(lambda: app.config.security.rate_limit_rpm == 0)
        for _ in range(50):
            assert await client.call("ping") == "pong"
    finally:
        await client.close()
        await app.stop()
