"""Revoking an API key ends the sessions it opened, without a restart (PROTOCOL 4.4)."""

import asyncio

from camera_service.auth.api_keys import ApiKeyStore
from camera_service.client import RpcCallError


async def test_revocation_ends_open_session(app, connect):
    path = app.authenticator.api_keys.path
    key, entry = ApiKeyStore(path).create("viewer", "dashboard")
    other_key, _ = ApiKeyStore(path).create("viewer", "other")
    client = await connect()
    bystander = await connect()
    for _ in range(100):  # the server reloads the file on inotify
        try:
            await client.authenticate(key)
            break
        except RpcCallError:
            await asyncio.sleep(0.02)
    await bystander.authenticate(other_key)
    assert await client.call("ping") == "pong"

    assert ApiKeyStore(path).revoke(entry.key_id)  # as `camera-service apikey revoke` does
    error = None
    for _ in range(150):
        try:
            await client.call("ping")
        except RpcCallError as exc:
            error = exc
            break
        await asyncio.sleep(0.02)
    assert error is not None, "session survived the revocation"
    assert (error.code, error.message) == (-32001, "Authentication required")
    assert await bystander.call("ping") == "pong"  # another key's session is untouched


async def test_moved_key_file_is_watched_after_live_reload(tmp_path, test_overrides):
    """security.api_keys_file is live: keys written to the new file work without a restart."""
    from conftest import merge

    from camera_service.app import Application
    from camera_service.client import RpcClient
    from camera_service.config import load_config

    config_file = tmp_path / "live.toml"
    new_keys = tmp_path / "moved" / "keys.json"
    config_file.write_text("")
    overrides = merge(test_overrides, {})
    app = Application(
        load_config(config_file, env={}, overrides=overrides), config_path=str(config_file), env={}
    )
    await app.start()
    client = None
    try:
        new_keys.parent.mkdir()
        config_file.write_text(f'[security]\napi_keys_file = "{new_keys}"\n')
        for _ in range(150):
            if app.authenticator.api_keys.path == str(new_keys):
                break
            await asyncio.sleep(0.02)
        assert app.authenticator.api_keys.path == str(new_keys)
        key, _ = ApiKeyStore(str(new_keys)).create("admin", "moved")
        client = await RpcClient.connect(f"ws://127.0.0.1:{app.port}/ws")
        for _ in range(150):
            try:
                result = await client.authenticate(key)
                break
            except RpcCallError:
                await asyncio.sleep(0.02)
        else:
            raise AssertionError("a key in the new file was never accepted")
        assert result["role"] == "admin"
    finally:
        if client is not None:
            await client.close()
        await app.stop()
