"""Revoking an API key ends the sessions it opened, without a restart (PROTOCOL 4.4)."""

import asyncio

from camera_service.auth.api_keys import ApiKeyStore
from camera_service.client import RpcCallError


async def test_revocation_ends_open_session(app, connect):
    path = app.services.authenticator.api_keys.path
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
