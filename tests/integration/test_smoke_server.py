"""The end-to-end path in one test: connect, authenticate, call, close."""

from conftest import mint_token

from camera_service.client import RpcCallError


async def test_authenticate_then_ping(connect):
    client = await connect()
    try:
        await client.call("ping")
    except RpcCallError as exc:
        assert (exc.code, exc.message) == (-32001, "Authentication required")
    else:
        raise AssertionError("ping without a session must fail")
    result = await client.authenticate(mint_token("operator", user="bob"))
    assert result["role"] == "operator" and result["user_id"] == "bob"
    assert await client.call("ping") == "pong"
