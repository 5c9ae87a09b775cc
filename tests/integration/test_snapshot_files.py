"""Snapshot files (PROTOCOL 5.12, 5.13, 7, 5.8) against a real in-process service: the
JSON-RPC methods over real WebSocket clients, downloads over raw HTTP, and the index following
files that appear and vanish in the directory behind the service's back (inotify).

Test data are real JPEG/PNG files written straight into `snapshots.path`, as the snapshot
writer (or an operator's `cp`) would put them there.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import shutil
from pathlib import Path
from urllib.parse import quote

import orjson
import pytest
from conftest import mint_token, parse_head, wait_until, ws_url
from PIL import Image

from camera_service.auth.http_credentials import http_session
from camera_service.auth.roles import ROLE_LEVELS
from camera_service.client import RpcCallError, RpcClient
from camera_service.core.events import FileDeleted
from camera_service.health import utc_timestamp
from camera_service.web.responses import FileResponse, Request, Response

BASE_NS = 1_780_000_000_000_000_000  # 2026-05-28T20:26:40Z
SECOND = 1_000_000_000


def image_bytes(width: int, height: int, fmt: str = "JPEG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (width % 256, height % 256, 77)).save(buffer, fmt)
    return buffer.getvalue()


JPEG = image_bytes(64, 48)
PNG = image_bytes(40, 30, "PNG")


def put(directory: Path, name: str, data: bytes, mtime_ns: int | None = None) -> Path:
    path = directory / name
    path.write_bytes(data)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


def file_object(directory: Path, name: str, resolution: str | None) -> dict:
    st = os.lstat(directory / name)
    return {
        "filename": name,
        "file_size": st.st_size,
        "modified_time": utc_timestamp(st.st_mtime),
        "download_url": "/files/snapshots/" + quote(name, safe=""),
        "resolution": resolution,
    }


@pytest.fixture
def snaps(tmp_path) -> Path:
    directory = tmp_path / "snaps"
    directory.mkdir()
    return directory


@pytest.fixture
async def service(start_app, snaps):
    return await start_app({"snapshots": {"path": str(snaps)}})


@pytest.fixture
async def clients():
    """`await clients(app, role)` -> an RpcClient authenticated with a real JWT of `role`."""
    opened: list[RpcClient] = []

    async def open_client(app, role: str | None = "viewer") -> RpcClient:
        client = await RpcClient.connect(ws_url(app))
        opened.append(client)
        if role is not None:
            await client.authenticate(mint_token(role, user=f"{role}-user"))
        return client

    yield open_client
    for client in opened:
        try:
            await asyncio.wait_for(client.close(), 2)
        except Exception:
            pass


async def rpc_error(client: RpcClient, method: str, params: dict) -> RpcCallError:
    with pytest.raises(RpcCallError) as caught:
        await client.call(method, params)
    return caught.value


async def fetch(port: int, path: str, method: str = "GET", **headers: str):
    """(status, lower-case headers, body) of one raw HTTP/1.1 request."""
    extra = "".join(f"{name.replace('_', '-')}: {value}\r\n" for name, value in headers.items())
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n".encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        body = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    status, response_headers = parse_head(head.rstrip(b"\r\n"))
    if "content-length" in response_headers and method != "HEAD":
        assert len(body) == int(response_headers["content-length"])
    return status, response_headers, body


def bearer(role: str = "viewer", **claims) -> str:
    return f"Bearer {mint_token(role, **claims)}"


# ---- list_snapshots ----------------------------------------------------------------------


async def test_list_is_newest_first_then_by_name_with_paging(start_app, snaps, clients):
    put(snaps, "old.jpg", JPEG, BASE_NS)
    put(snaps, "b-same.png", PNG, BASE_NS + 5 * SECOND + 123_000_000)
    put(snaps, "a-same.jpg", JPEG, BASE_NS + 5 * SECOND + 123_000_000)
    put(snaps, "newest.jpg", JPEG, BASE_NS + 9 * SECOND)
    put(snaps, "notes.txt", b"not an image", BASE_NS + 1 * SECOND)
    app = await start_app({"snapshots": {"path": str(snaps)}})
    client = await clients(app)

    result = await client.call("list_snapshots")
    order = ["newest.jpg", "a-same.jpg", "b-same.png", "notes.txt", "old.jpg"]
    assert result == {
        "files": [
            file_object(snaps, "newest.jpg", "64x48"),
            file_object(snaps, "a-same.jpg", "64x48"),
            file_object(snaps, "b-same.png", "40x30"),
            file_object(snaps, "notes.txt", None),
            file_object(snaps, "old.jpg", "64x48"),
        ],
        "total": 5,
        "limit": 100,
        "offset": 0,
    }
    assert result["files"][1] == {
        "filename": "a-same.jpg",
        "file_size": len(JPEG),
        "modified_time": "2026-05-28T20:26:45.123Z",
        "download_url": "/files/snapshots/a-same.jpg",
        "resolution": "64x48",
    }

    page = await client.call("list_snapshots", {"limit": 2, "offset": 1})
    assert [f["filename"] for f in page["files"]] == order[1:3]
    assert (page["total"], page["limit"], page["offset"]) == (5, 2, 1)
    page = await client.call("list_snapshots", {"limit": 1000, "offset": 4})
    assert [f["filename"] for f in page["files"]] == order[4:]
    page = await client.call("list_snapshots", {"limit": 1, "offset": 5, "unknown": [1, 2]})
    assert page == {"files": [], "total": 5, "limit": 1, "offset": 5}


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"limit": 0}, "limit must be an integer 1-1000"),
        ({"limit": 1001}, "limit must be an integer 1-1000"),
        ({"limit": -5}, "limit must be an integer 1-1000"),
        ({"limit": "10"}, "limit must be an integer 1-1000"),
        ({"limit": 10.0}, "limit must be an integer 1-1000"),
        ({"limit": True}, "limit must be an integer 1-1000"),
        ({"limit": None}, "limit must be an integer 1-1000"),
        ({"offset": -1}, "offset must be an integer >= 0"),
        ({"offset": "0"}, "offset must be an integer >= 0"),
        ({"offset": 1.5}, "offset must be an integer >= 0"),
        ({"offset": False}, "offset must be an integer >= 0"),
        ({"limit": 5, "offset": [0]}, "offset must be an integer >= 0"),
    ],
)
async def test_list_params_out_of_range_or_of_the_wrong_type(service, clients, params, reason):
    client = await clients(service)
    error = await rpc_error(client, "list_snapshots", params)
    assert (error.code, error.message, error.data) == (
        -32602,
        "Invalid parameters",
        {"reason": reason},
    )


async def test_list_of_an_empty_directory_and_positional_params(service, clients):
    client = await clients(service)
    assert await client.call("list_snapshots", {"limit": 1, "offset": 0}) == {
        "files": [],
        "total": 0,
        "limit": 1,
        "offset": 0,
    }
    # Methods of this protocol take named params only.
    with pytest.raises(RpcCallError) as caught:
        await client.call("list_snapshots", [10, 0])  # type: ignore[arg-type]
    assert caught.value.code == -32602


# ---- get_snapshot_info / delete_snapshot -------------------------------------------------


async def test_info_delete_and_not_found(service, snaps, clients):
    put(snaps, "keep.png", PNG, BASE_NS)
    put(snaps, "gone.jpg", JPEG, BASE_NS + SECOND)
    service.snapshot_files.note_written("keep.png")
    service.snapshot_files.note_written("gone.jpg")
    viewer = await clients(service, "viewer")
    operator = await clients(service, "operator")

    info = await viewer.call("get_snapshot_info", {"filename": "gone.jpg", "extra": True})
    expected = file_object(snaps, "gone.jpg", "64x48")
    expected["created_time"] = utc_timestamp(os.lstat(snaps / "gone.jpg").st_ctime)
    assert info == expected
    assert list(info) == [
        "filename",
        "file_size",
        "modified_time",
        "download_url",
        "resolution",
        "created_time",
    ]

    # A viewer may look but not delete.
    error = await rpc_error(viewer, "delete_snapshot", {"filename": "gone.jpg"})
    assert (error.code, error.message) == (-32003, "Insufficient permissions")
    assert (error.data["required_role"], error.data["role"]) == ("operator", "viewer")
    assert (snaps / "gone.jpg").exists()

    async with service.bus.stream(FileDeleted) as deleted:
        result = await operator.call("delete_snapshot", {"filename": "gone.jpg"})
        assert result == {
            "filename": "gone.jpg",
            "deleted": True,
            "message": "Snapshot file deleted successfully",
        }
        assert not (snaps / "gone.jpg").exists()
        event = await asyncio.wait_for(anext(deleted), 5)
    assert event == FileDeleted("snapshot", "gone.jpg")
    # The index knows at once, not only when the kernel's event comes in.
    listed = await viewer.call("list_snapshots")
    assert [f["filename"] for f in listed["files"]] == ["keep.png"]

    not_found = {"reason": "no snapshot file with this name", "filename": "gone.jpg"}
    for client, method in ((viewer, "get_snapshot_info"), (operator, "delete_snapshot")):
        error = await rpc_error(client, method, {"filename": "gone.jpg"})
        assert (error.code, error.message, error.data) == (
            -1005,
            "Snapshot file not found",
            not_found,
        )


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({}, "filename is required: the base name of a file"),
        ({"filename": None}, "filename must be a string, got null"),
        ({"filename": 5}, "filename must be a string, got int"),
        ({"filename": ""}, "filename: must not be empty"),
        ({"filename": ".."}, 'filename: must be a file name, not ".."'),
        ({"filename": "../keep.png"}, 'filename: must be a base name, without "/" or "\\"'),
        ({"filename": "/etc/passwd"}, 'filename: must be a base name, without "/" or "\\"'),
        ({"filename": "..\\keep.png"}, 'filename: must be a base name, without "/" or "\\"'),
        ({"filename": ".hidden"}, 'filename: must not start with "."'),
        ({"filename": "a\nb"}, "filename: must not contain NUL or control characters"),
        ({"filename": "a\u0000b"}, "filename: must not contain NUL or control characters"),
        ({"filename": "é" * 128}, "filename: must be at most 255 bytes in UTF-8, got 256"),
    ],
)
async def test_bad_file_names_are_invalid_params(service, snaps, clients, params, reason):
    put(snaps, "keep.png", PNG)
    operator = await clients(service, "operator")
    for method in ("get_snapshot_info", "delete_snapshot"):
        error = await rpc_error(operator, method, params)
        assert (error.code, error.message, error.data) == (
            -32602,
            "Invalid parameters",
            {"reason": reason},
        ), method
    assert (snaps / "keep.png").read_bytes() == PNG


# ---- changes behind the service's back (inotify) -----------------------------------------


async def listed(client: RpcClient) -> dict[str, dict]:
    return {f["filename"]: f for f in (await client.call("list_snapshots"))["files"]}


async def test_files_written_and_removed_behind_the_services_back(
    service, snaps, tmp_path, clients
):
    index = service.snapshot_files
    client = await clients(service)
    assert await listed(client) == {}

    put(snaps, "a.jpg", JPEG)
    await wait_until(lambda: index.count() == 1, 5, "a.jpg to be indexed")
    assert (await listed(client))["a.jpg"] == file_object(snaps, "a.jpg", "64x48")

    # Rewritten in place with a bigger image: new size and resolution (cache invalidated).
    bigger = image_bytes(320, 240)
    put(snaps, "a.jpg", bigger)
    await wait_until(lambda: index.total_size() == len(bigger), 5, "a.jpg's new size")
    assert (await listed(client))["a.jpg"]["resolution"] == "320x240"

    # Renamed in from elsewhere (an atomic writer's final step) and out again.
    outside = tmp_path / "elsewhere.png"
    outside.write_bytes(PNG)
    os.rename(outside, snaps / "moved-in.png")
    await wait_until(lambda: index.count() == 2, 5, "moved-in.png to be indexed")
    os.rename(snaps / "a.jpg", tmp_path / "a.jpg")
    await wait_until(lambda: index.count() == 1, 5, "a.jpg to leave the index")
    assert list(await listed(client)) == ["moved-in.png"]

    # `touch` changes only the time: the order follows it.
    put(snaps, "later.jpg", JPEG, BASE_NS + 10 * SECOND)
    os.utime(snaps / "moved-in.png", ns=(BASE_NS, BASE_NS))
    order = ["later.jpg", "moved-in.png"]
    await wait_until(lambda: [e.name for e in index.list(10, 0)[0]] == order, 5, "the touch")
    assert list(await listed(client)) == order

    # Temporary files of atomic writes and subdirectories are never listed.
    put(snaps, ".later.jpg.1a2b3c4d.tmp", JPEG)
    (snaps / "subdir").mkdir()
    put(snaps, "marker.jpg", JPEG)  # seen after the two above: the kernel keeps event order
    await wait_until(lambda: index.count() == 3, 5, "marker.jpg to be indexed")
    assert sorted(await listed(client)) == ["later.jpg", "marker.jpg", "moved-in.png"]

    for name in ("later.jpg", "marker.jpg", "moved-in.png"):
        os.unlink(snaps / name)
    await wait_until(lambda: index.count() == 0, 5, "the index to empty")
    assert await listed(client) == {}
    assert index.total_size() == 0


async def test_own_writes_and_deletes_show_without_waiting_for_the_kernel(service, snaps):
    index = service.snapshot_files
    put(snaps, "mine.jpg", JPEG)
    # No await between the write and the checks: the inotify reader cannot have run.
    entry = index.note_written("mine.jpg")
    assert entry is not None and (entry.name, entry.size) == ("mine.jpg", len(JPEG))
    assert [e.name for e in index.list(10, 0)[0]] == ["mine.jpg"]
    assert (index.count(), index.total_size()) == (1, len(JPEG))
    index.delete("mine.jpg")
    assert (index.count(), index.total_size(), index.list(10, 0)) == (0, 0, ([], 0))
    assert index.note_written(".hidden.tmp") is None
    with pytest.raises(FileNotFoundError):
        index.delete("mine.jpg")


async def test_a_queue_overflow_is_repaired_by_one_rescan(service, snaps, monkeypatch):
    index = service.snapshot_files
    scans = []
    real_scandir = os.scandir
    monkeypatch.setattr(os, "scandir", lambda path: scans.append(path) or real_scandir(path))
    with open("/proc/sys/fs/inotify/max_queued_events") as fh:
        queue_limit = int(fh.read())
    if queue_limit > 50_000:
        pytest.skip(f"max_queued_events is {queue_limit}: too many files to write for a test")
    # Each new file raises CREATE and CLOSE_WRITE; the loop is blocked while they are written,
    # so the kernel's queue overflows and events are lost.
    count = queue_limit // 2 + 200
    for number in range(count):
        (snaps / f"f{number:05d}.jpg").write_bytes(b"x")
    await wait_until(lambda: index.count() == count, 10, f"{count} files to be indexed")
    assert scans == [index.directory]
    assert index.total_size() == count


async def test_a_deleted_directory_empties_the_list_and_the_service_keeps_serving(
    service, snaps, clients
):
    index = service.snapshot_files
    put(snaps, "a.jpg", JPEG)
    await wait_until(lambda: index.count() == 1, 5, "a.jpg to be indexed")
    client = await clients(service)

    shutil.rmtree(snaps)
    await wait_until(lambda: not index.watching, 5, "the index to notice the deletion")
    assert await client.call("list_snapshots") == {
        "files": [],
        "total": 0,
        "limit": 100,
        "offset": 0,
    }
    assert await client.call("ping") == "pong"
    status, _, _ = await fetch(service.port, "/files/snapshots/a.jpg", Authorization=bearer())
    assert status == 404

    # The service writes there again: the directory is followed again, outside writes too.
    snaps.mkdir()
    put(snaps, "b.jpg", JPEG)
    assert index.note_written("b.jpg") is not None
    assert index.watching
    put(snaps, "c.jpg", JPEG)
    await wait_until(lambda: index.count() == 2, 5, "c.jpg to be indexed")


async def test_symlinks_are_neither_listed_nor_served(start_app, snaps, tmp_path, clients):
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(JPEG)
    (snaps / "early-link.jpg").symlink_to(secret)  # present at the start-up scan
    (snaps / "dangling.jpg").symlink_to(tmp_path / "nothing-here")
    put(snaps, "real.jpg", JPEG)
    app = await start_app({"snapshots": {"path": str(snaps)}})
    index = app.snapshot_files
    (snaps / "late-link.jpg").symlink_to(secret)  # seen through inotify
    put(snaps, "marker.png", PNG)
    await wait_until(lambda: index.count() == 2, 5, "marker.png to be indexed")

    viewer = await clients(app, "viewer")
    operator = await clients(app, "operator")
    assert sorted(await listed(viewer)) == ["marker.png", "real.jpg"]
    for name in ("early-link.jpg", "late-link.jpg", "dangling.jpg"):
        for client, method in ((viewer, "get_snapshot_info"), (operator, "delete_snapshot")):
            error = await rpc_error(client, method, {"filename": name})
            assert error.code == -1005, (name, method)
        status, _, body = await fetch(app.port, f"/files/snapshots/{name}", Authorization=bearer())
        assert (status, orjson.loads(body)) == (404, {"error": "not found"}), name
        assert (snaps / name).is_symlink()
    assert secret.read_bytes() == JPEG


async def test_a_file_response_without_symlinks_refuses_a_link_swapped_in(service, tmp_path):
    # The race the index cannot see: the name turns into a link between lookup and open.
    target = tmp_path / "target.bin"
    target.write_bytes(b"outside")
    link = tmp_path / "link.bin"
    link.symlink_to(target)
    service.http.add_route("/test-follow", lambda request: FileResponse(str(link)))
    service.http.add_route(
        "/test-nofollow", lambda request: FileResponse(str(link), follow_symlinks=False)
    )
    assert (await fetch(service.port, "/test-follow"))[::2] == (200, b"outside")
    assert (await fetch(service.port, "/test-nofollow"))[0] == 404


# ---- HTTP downloads ----------------------------------------------------------------------


async def test_download_with_bearer_and_query_token(service, snaps):
    data = image_bytes(200, 100)
    put(snaps, "shot.jpg", data)
    put(snaps, "shot.png", PNG)
    port = service.port
    token = mint_token("viewer")

    for path, headers in (
        ("/files/snapshots/shot.jpg", {"Authorization": f"Bearer {token}"}),
        ("/files/snapshots/shot.jpg", {"Authorization": f"bearer   {token}"}),
        (f"/files/snapshots/shot.jpg?token={token}", {}),
    ):
        status, head, body = await fetch(port, path, **headers)
        assert (status, body) == (200, data), path
        assert head["content-type"] == "image/jpeg"
        assert head["content-disposition"] == 'attachment; filename="shot.jpg"'
        assert head["accept-ranges"] == "bytes"
        assert head["content-length"] == str(len(data))
        assert head["cache-control"] == "no-store"

    status, head, body = await fetch(port, "/files/snapshots/shot.png", Authorization=bearer())
    assert (status, head["content-type"], body) == (200, "image/png", PNG)

    status, head, body = await fetch(
        port, "/files/snapshots/shot.jpg", Authorization=bearer(), Range="bytes=100-199"
    )
    assert (status, body) == (206, data[100:200])
    assert head["content-range"] == f"bytes 100-199/{len(data)}"
    status, head, body = await fetch(
        port, "/files/snapshots/shot.jpg", Authorization=bearer(), Range="bytes=-10"
    )
    assert (status, body) == (206, data[-10:])
    status, head, body = await fetch(
        port, "/files/snapshots/shot.jpg", Authorization=bearer(), Range=f"bytes={len(data)}-"
    )
    assert (status, head["content-range"], body) == (416, f"bytes */{len(data)}", b"")

    status, head, body = await fetch(
        port, "/files/snapshots/shot.jpg", "HEAD", Authorization=bearer()
    )
    assert (status, head["content-length"], body) == (200, str(len(data)), b"")

    # An API key works like a JWT.
    key, _ = service.authenticator.api_keys.create("viewer", "downloads")
    status, _, body = await fetch(port, "/files/snapshots/shot.jpg", Authorization=f"Bearer {key}")
    assert (status, body) == (200, data)
    status, _, body = await fetch(port, f"/files/snapshots/shot.jpg?token={key}")
    assert (status, body) == (200, data)


async def test_download_url_of_a_name_with_spaces_and_accents(service, snaps, clients):
    name = 'café "1".jpg'
    put(snaps, name, JPEG)
    service.snapshot_files.note_written(name)
    client = await clients(service)
    (entry,) = (await client.call("list_snapshots"))["files"]
    assert entry["download_url"] == "/files/snapshots/caf%C3%A9%20%221%22.jpg"
    status, head, body = await fetch(service.port, entry["download_url"], Authorization=bearer())
    assert (status, body) == (200, JPEG)
    assert head["content-disposition"] == (
        'attachment; filename="caf_ \\"1\\".jpg"; filename*=UTF-8\'\'caf%C3%A9%20%221%22.jpg'
    )


async def test_download_refusals(service, snaps):
    put(snaps, "shot.jpg", JPEG)
    put(snaps, ".hidden", JPEG)
    port = service.port

    status, head, body = await fetch(port, "/files/snapshots/shot.jpg")
    assert (status, orjson.loads(body)) == (401, {"error": "authentication required"})
    assert head["www-authenticate"] == "Bearer"
    # No credentials: not even whether a name is bad or missing is revealed.
    for path in ("/files/snapshots/..%2Fx", "/files/snapshots/missing.jpg"):
        assert (await fetch(port, path))[0] == 401, path

    for headers, reason in (
        ({"Authorization": "Bearer not-a-token"}, "malformed API key"),
        ({"Authorization": bearer(ttl=-10)}, "token expired"),
        (
            {"Authorization": bearer(secret="another-secret-0123456789abcdef01234")},
            "invalid signature",
        ),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "expected Bearer credentials"),
        ({"Authorization": "Bearer"}, "expected Bearer credentials"),
    ):
        status, head, body = await fetch(port, "/files/snapshots/shot.jpg", **headers)
        assert (status, orjson.loads(body)) == (
            401,
            {"error": "authentication failed", "reason": reason},
        ), headers
        assert head["www-authenticate"] == 'Bearer error="invalid_token"'
    status, _, body = await fetch(port, "/files/snapshots/shot.jpg?token=x.y.z")
    assert (status, orjson.loads(body)["reason"]) == (401, "malformed token")

    auth = {"Authorization": bearer()}
    for path, reason in (
        ("/files/snapshots/..%2Fx", 'bad file name: must be a base name, without "/" or "\\"'),
        ("/files/snapshots/a%5Cb", 'bad file name: must be a base name, without "/" or "\\"'),
        ("/files/snapshots/.hidden", 'bad file name: must not start with "."'),
        ("/files/snapshots/..", 'bad file name: must be a file name, not ".."'),
        ("/files/snapshots/", "bad file name: must not be empty"),
        ("/files/snapshots/a%00b", "bad file name: must not contain NUL or control characters"),
        (
            "/files/snapshots/sub/shot.jpg",
            'bad file name: must be a base name, without "/" or "\\"',
        ),
    ):
        status, _, body = await fetch(port, path, **auth)
        assert (status, orjson.loads(body)) == (400, {"error": reason}), path

    status, _, body = await fetch(port, "/files/snapshots/missing.jpg", **auth)
    assert (status, orjson.loads(body)) == (404, {"error": "not found"})


async def test_role_too_low_is_403(service):
    request = Request("GET", "/files/x", {}, {"authorization": f"Bearer {mint_token('viewer')}"})
    answer = http_session(service.authenticator, request, ROLE_LEVELS["admin"])
    assert isinstance(answer, Response)
    assert (answer.status, orjson.loads(answer.body)) == (
        403,
        {"error": "insufficient permissions", "required_role": "admin", "role": "viewer"},
    )
    session = http_session(service.authenticator, request, ROLE_LEVELS["viewer"])
    assert not isinstance(session, Response)
    assert (session.role, session.user_id) == ("viewer", "alice")


async def test_tokens_never_reach_the_logs(service, snaps, caplog):
    put(snaps, "shot.jpg", JPEG)
    good = mint_token("viewer")
    expired = mint_token("viewer", ttl=-10)
    key, _ = service.authenticator.api_keys.create("viewer", "logged?")
    with caplog.at_level(logging.DEBUG, logger="camera_service"):
        for token in (good, expired, key, key[:-1] + "x"):
            await fetch(service.port, f"/files/snapshots/shot.jpg?token={token}")
            await fetch(service.port, "/files/snapshots/shot.jpg", Authorization=f"Bearer {token}")
            await fetch(service.port, f"/files/snapshots/..%2F?token={token}")
    assert caplog.records, "expected the authentications to be logged"
    for record in caplog.records:
        text = record.getMessage() + repr(vars(record))
        for token in (good, expired, key, key[:-1] + "x"):
            assert token not in text, record


# ---- 10,000 files ------------------------------------------------------------------------


async def test_10000_files_are_listed_from_the_index_not_by_scanning(
    start_app, snaps, clients, monkeypatch
):
    count = 10_000
    names = [f"camera{n % 4}_snapshot_{n:05d}.jpg" for n in range(count)]
    for number, name in enumerate(names):
        # Every second pair of files shares its time, so the name order is exercised too.
        put(snaps, name, JPEG, BASE_NS + (number // 2) * SECOND)
    expected = [
        name for _, name in sorted((-(number // 2), name) for number, name in enumerate(names))
    ]
    app = await start_app({"snapshots": {"path": str(snaps)}})
    client = await clients(app)

    seen = []
    for offset in range(0, count, 1000):
        page = await client.call("list_snapshots", {"limit": 1000, "offset": offset})
        assert (page["total"], page["limit"], page["offset"]) == (count, 1000, offset)
        seen += [f["filename"] for f in page["files"]]
    assert seen == expected
    assert page["files"][-1] == file_object(snaps, expected[-1], "64x48")

    scans = []
    real_scandir, real_listdir = os.scandir, os.listdir
    monkeypatch.setattr(os, "scandir", lambda *a: scans.append(a) or real_scandir(*a))
    monkeypatch.setattr(os, "listdir", lambda *a: scans.append(a) or real_listdir(*a))
    for call in range(100):
        offset = (call * 97) % count
        page = await client.call("list_snapshots", {"limit": 100, "offset": offset})
        assert [f["filename"] for f in page["files"]] == expected[offset : offset + 100]
    assert scans == []
