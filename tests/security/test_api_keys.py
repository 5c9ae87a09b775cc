"""API key store against real files."""

import json
import multiprocessing
import os
import secrets
import stat
import string
import time

import pytest

from camera_service.auth.api_keys import (
    KEY_PREFIX,
    ApiKeyEntry,
    ApiKeyStore,
    ApiKeyStoreError,
    hash_key,
)
from camera_service.auth.sessions import AuthenticationFailed

NOW = 1_800_000_000.0


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "state" / "api_keys.json")


def reason(store, key, now=None):
    with pytest.raises(AuthenticationFailed) as info:
        store.verify(key, now=now)
    return info.value.reason


def bump(path):
    """Make the next mtime differ even on coarse-timestamp filesystems."""
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_missing_file_means_no_keys(path):
    store = ApiKeyStore(path)
    assert store.list() == ()
    assert len(store) == 0
    assert reason(store, "k" * 43) == "unknown API key"
    assert not os.path.exists(os.path.dirname(path))


def test_created_key_verifies(path):
    store = ApiKeyStore(path)
    key, entry = store.create("operator", "ci bot", now=NOW)
    assert key.startswith(KEY_PREFIX) and len(key) >= 32 + len(KEY_PREFIX)
    assert set(key[len(KEY_PREFIX) :]) <= set(string.ascii_letters + string.digits + "-_")
    assert store.verify(key, now=NOW) == entry
    assert (entry.role, entry.name, entry.active) == ("operator", "ci bot", True)
    assert entry.created_at == "2027-01-15T08:00:00Z"
    assert entry.expires_at is None and entry.status(NOW) == "active"
    # A fresh store (the server after a restart) sees the same key.
    assert ApiKeyStore(path).verify(key).key_id == entry.key_id


def test_file_mode_dir_mode_and_only_hashes_stored(path):
    store = ApiKeyStore(path)
    keys = [store.create(role, f"k{role}")[0] for role in ("viewer", "operator", "admin")]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    raw = open(path).read()
    for key in keys:
        assert key not in raw
        assert key[len(KEY_PREFIX) :] not in raw
        assert key[len(KEY_PREFIX) :][:16] not in raw
        assert hash_key(key) in raw
    doc = json.loads(raw)
    assert doc["version"] == 1
    assert list(doc["keys"][0]) == [
        "key_id",
        "name",
        "role",
        "hash",
        "created_at",
        "expires_at",
        "active",
    ]
    # No temp files left next to it.
    assert os.listdir(os.path.dirname(path)) == ["api_keys.json"]


def test_random_keys_rejected_while_real_keys_exist(path):
    store = ApiKeyStore(path)
    real = [store.create("admin", f"n{i}")[0] for i in range(3)]
    alphabet = string.ascii_letters + string.digits
    for _ in range(100):
        guess = "".join(secrets.choice(alphabet) for _ in range(32))
        assert reason(store, guess) == "unknown API key"
    # Near misses of a real key fail too.
    assert reason(store, real[0][:-1] + ("A" if real[0][-1] != "A" else "B")) == "unknown API key"
    assert reason(store, real[0] + "x") == "unknown API key"
    assert reason(store, real[0].upper()) == "unknown API key"
    assert all(store.verify(k).role == "admin" for k in real)


@pytest.mark.parametrize("key", ["", "short", "x" * 31, "x" * 513])
def test_wrong_length_refused_without_lookup(path, key, monkeypatch):
    store = ApiKeyStore(path)
    store.create("viewer", "n")
    from camera_service.auth import api_keys as mod

    def no_hashing(_):
        raise AssertionError("hashed a key of impossible length")

    monkeypatch.setattr(mod, "hash_key", no_hashing)
    assert reason(store, key) == "malformed API key"


@pytest.mark.parametrize("key", [None, 12345, b"x" * 40, ["x" * 40]])
def test_non_string_key(path, key):
    assert reason(ApiKeyStore(path), key) == "API key must be a string"


def test_revoked_key_rejected_by_the_server_store_after_reload(path):
    server = ApiKeyStore(path)
    cli = ApiKeyStore(path)
    key, entry = cli.create("operator", "to revoke")
    other, _ = cli.create("viewer", "stays")
    assert server.reload_if_changed() is True
    assert server.verify(key).key_id == entry.key_id
    assert server.reload_if_changed() is False

    assert ApiKeyStore(path).revoke(entry.key_id) is True
    # Until the server notices, it still has the old view...
    assert server.verify(key).key_id == entry.key_id
    # ...and the cheap check picks the change up without building a new store.
    assert server.reload_if_changed() is True
    assert reason(server, key) == "API key revoked"
    assert server.verify(other).role == "viewer"
    assert server.get(entry.key_id).status() == "revoked"


def test_revoke_twice_and_unknown(path):
    store = ApiKeyStore(path)
    _, entry = store.create("viewer", "n")
    assert store.revoke(entry.key_id) is True
    before = os.stat(path)
    assert store.revoke(entry.key_id) is True
    after = os.stat(path)
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)
    assert store.revoke("does-not-exist") is False
    assert store.get("does-not-exist") is None


def test_expired_key(path):
    store = ApiKeyStore(path)
    key, entry = store.create("admin", "temp", expires_days=2, now=NOW)
    assert entry.expires_at == "2027-01-17T08:00:00Z"
    assert entry.expires_ts == NOW + 2 * 86400
    assert store.verify(key, now=NOW + 2 * 86400 - 1).key_id == entry.key_id
    assert reason(store, key, now=NOW + 2 * 86400) == "API key expired"
    assert entry.status(NOW + 3 * 86400) == "expired"
    # Expiry survives the round trip through the file.
    assert reason(ApiKeyStore(path), key, now=NOW + 2 * 86400) == "API key expired"


def test_expired_on_real_clock(path):
    store = ApiKeyStore(path)
    key, _ = store.create("admin", "old", expires_days=1, now=time.time() - 2 * 86400)
    assert reason(store, key) == "API key expired"


@pytest.mark.parametrize(
    "role,name,days,match",
    [
        ("root", "n", None, "unknown role"),
        ("admin", "", None, "name"),
        ("admin", "   ", None, "name"),
        ("admin", "a\nb", None, "name"),
        ("admin", "x" * 201, None, "name"),
        ("admin", None, None, "name"),
        ("admin", "n", 0, "expires_days"),
        ("admin", "n", -1, "expires_days"),
        ("admin", "n", 1.5, "expires_days"),
        ("admin", "n", True, "expires_days"),
        ("admin", "n", 36501, "expires_days"),
    ],
)
def test_create_validates(path, role, name, days, match):
    with pytest.raises(ValueError, match=match):
        ApiKeyStore(path).create(role, name, days)
    assert not os.path.exists(path)


def test_keys_and_ids_are_unique(path):
    store = ApiKeyStore(path)
    made = [store.create("viewer", "n") for _ in range(50)]
    assert len({k for k, _ in made}) == 50
    assert len({e.key_id for _, e in made}) == 50
    assert [e.key_id for e in store.list()] == [e.key_id for _, e in made]


def write_doc(path, doc):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        fh.write(doc if isinstance(doc, str) else json.dumps(doc))


def good_entry(**over):
    entry = {
        "key_id": "abc123",
        "name": "n",
        "role": "viewer",
        "hash": hash_key("k" * 40),
        "created_at": "2026-01-01T00:00:00Z",
        "expires_at": None,
        "active": True,
    }
    entry.update(over)
    return entry


@pytest.mark.parametrize(
    "doc,match",
    [
        ("{not json", "not valid JSON"),
        ([], "expected an object"),
        ({"version": 1}, "expected an object"),
        ({"version": 2, "keys": []}, "unsupported version"),
        ({"version": 1, "keys": ["x"]}, r"keys\[0\]: expected an object"),
        ({"version": 1, "keys": [good_entry(role="root")]}, "unknown role"),
        ({"version": 1, "keys": [good_entry(hash="ABC")]}, "SHA-256"),
        ({"version": 1, "keys": [good_entry(hash="k" * 40)]}, "SHA-256"),
        ({"version": 1, "keys": [good_entry(active="yes")]}, "'active' has the wrong type"),
        ({"version": 1, "keys": [good_entry(key_id="a b")]}, "invalid key_id"),
        ({"version": 1, "keys": [good_entry(expires_at="tomorrow")]}, "ISO-8601"),
        ({"version": 1, "keys": [good_entry(created_at="2026-01-01T00:00:00")]}, "ISO-8601"),
        (
            {"version": 1, "keys": [{k: v for k, v in good_entry().items() if k != "name"}]},
            "missing 'name'",
        ),
        (
            {"version": 1, "keys": [good_entry(), good_entry(hash=hash_key("z" * 40))]},
            "duplicate key_id",
        ),
        ({"version": 1, "keys": [good_entry(), good_entry(key_id="other")]}, "duplicate hash"),
    ],
)
def test_corrupt_file_refused_at_start(path, doc, match):
    write_doc(path, doc)
    with pytest.raises(ApiKeyStoreError, match=match):
        ApiKeyStore(path)


def test_hand_written_entry_accepted(path):
    write_doc(
        path,
        {
            "version": 1,
            "keys": [
                good_entry(expires_at="2099-01-01T00:00:00+00:00"),
            ],
        },
    )
    entry = ApiKeyStore(path).verify("k" * 40)
    assert entry.expires_ts == 4070908800.0
    assert entry.to_public() == {
        "key_id": "abc123",
        "name": "n",
        "role": "viewer",
        "created_at": "2026-01-01T00:00:00Z",
        "expires_at": "2099-01-01T00:00:00+00:00",
        "active": True,
    }


def test_corrupt_file_on_reload_keeps_previous_keys(path, caplog):
    store = ApiKeyStore(path)
    key, _ = store.create("admin", "n")
    with open(path, "w") as fh:
        fh.write('{"version": 1, "keys": [')
    bump(path)
    with caplog.at_level("INFO", logger="camera_service.auth"):
        assert store.reload_if_changed() is False
        # Remembered: no second error for the same broken file.
        assert store.reload_if_changed() is False
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "not valid JSON" in errors[0].reason
    assert store.verify(key).role == "admin"

    # Fixing the file is picked up again.
    write_doc(path, {"version": 1, "keys": []})
    bump(path)
    assert store.reload_if_changed() is True
    assert reason(store, key) == "unknown API key"


def test_corrupt_file_is_never_overwritten_by_create(path):
    write_doc(path, "garbage")
    store_path_content = open(path).read()
    with pytest.raises(ApiKeyStoreError):
        ApiKeyStore(path)
    # Even a store made before the corruption refuses to write over it.
    os.remove(path)
    store = ApiKeyStore(path)
    write_doc(path, "garbage")
    with pytest.raises(ApiKeyStoreError, match="not valid JSON"):
        store.create("viewer", "n")
    with pytest.raises(ApiKeyStoreError):
        store.revoke("x")
    assert open(path).read() == store_path_content


def test_deleted_file_means_no_keys_after_reload(path):
    store = ApiKeyStore(path)
    key, _ = store.create("viewer", "n")
    os.remove(path)
    assert store.reload_if_changed() is True
    assert reason(store, key) == "unknown API key"


def test_unreadable_path_is_an_error(tmp_path):
    d = tmp_path / "dir"
    d.mkdir()
    with pytest.raises(ApiKeyStoreError, match="cannot read"):
        ApiKeyStore(str(d))
    (tmp_path / "file").write_text("")
    with pytest.raises(ApiKeyStoreError, match="cannot open"):
        ApiKeyStore(str(tmp_path / "file" / "keys.json"))


def test_unwritable_location(tmp_path):
    # Nothing to read behind a dangling symlink, and no directory can be made through it.
    (tmp_path / "dangling").symlink_to(tmp_path / "missing" / "deeper")
    store = ApiKeyStore(str(tmp_path / "dangling" / "keys.json"))
    assert store.list() == ()
    with pytest.raises(ApiKeyStoreError, match="cannot use the key directory"):
        store.create("viewer", "n")


def test_write_failure_reported(path, monkeypatch):
    from camera_service.auth import api_keys as mod

    def disk_full(*_a, **_k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(mod, "write_private_file", disk_full)
    with pytest.raises(ApiKeyStoreError, match="No space left"):
        ApiKeyStore(path).create("viewer", "n")


def test_group_writable_file_warned(path, caplog):
    ApiKeyStore(path).create("viewer", "n")
    os.chmod(path, 0o664)
    with caplog.at_level("WARNING", logger="camera_service.auth"):
        ApiKeyStore(path)
    assert "writable by group or others" in caplog.text


def test_entry_is_immutable(path):
    _, entry = ApiKeyStore(path).create("viewer", "n")
    with pytest.raises(AttributeError):
        entry.active = False
    assert isinstance(entry, ApiKeyEntry)


def _create_many(path, n):
    store = ApiKeyStore(path)
    for i in range(n):
        store.create("viewer", f"p{os.getpid()}-{i}")


def test_concurrent_creators_lose_no_key(path):
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_create_many, args=(path, 10)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert len(ApiKeyStore(path).list()) == 40
