"""JWT verification and JWT secret resolution, with real signed tokens."""

import base64
import hashlib
import hmac
import json
import os
import stat
import time
import types

import jwt
import pytest

from camera_service.auth.jwt_auth import MAX_TOKEN_LENGTH, JwtVerifier
from camera_service.auth.secrets import ENV_VAR, JwtSecretError, resolve_jwt_secret
from camera_service.auth.sessions import AuthenticationFailed

SECRET = "s3cret-for-tests-" + "x" * 60
NOW = 1_800_000_000.0


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def seg(obj) -> str:
    return b64(json.dumps(obj).encode())


def hs256(header_seg: str, payload_seg: str, secret: str = SECRET) -> str:
    mac = hmac.new(secret.encode(), f"{header_seg}.{payload_seg}".encode(), hashlib.sha256)
    return f"{header_seg}.{payload_seg}.{b64(mac.digest())}"


def claims(**over):
    base = {"user_id": "alice", "role": "operator", "iat": int(NOW) - 10, "exp": int(NOW) + 3600}
    base.update(over)
    return {k: v for k, v in base.items() if v is not ...}


def token(secret=SECRET, algorithm="HS256", **over):
    return jwt.encode(claims(**over), secret, algorithm=algorithm)


def reason(verifier, tok, now=NOW):
    with pytest.raises(AuthenticationFailed) as info:
        verifier.verify(tok, now=now)
    assert str(info.value) == info.value.reason
    return info.value.reason


@pytest.fixture
def verifier():
    return JwtVerifier(SECRET, ["HS256"], 0)


def test_valid_token_gives_its_claims(verifier):
    c = verifier.verify(token(jti="j1"), now=NOW)
    assert (c.user_id, c.role, c.exp, c.iat, c.nbf, c.jti) == (
        "alice",
        "operator",
        NOW + 3600,
        NOW - 10,
        None,
        "j1",
    )


def test_real_clock_is_used_by_default(verifier):
    now = time.time()
    assert verifier.verify(token(iat=int(now), exp=int(now) + 60)).user_id == "alice"


# -- algorithms ---------------------------------------------------------------------------------


def test_alg_none_rejected(verifier):
    unsigned = f"{seg({'alg': 'none', 'typ': 'JWT'})}.{seg(claims())}."
    assert reason(verifier, unsigned) == "algorithm not allowed"
    # Capitalisation games do not help either.
    unsigned = f"{seg({'alg': 'None'})}.{seg(claims())}."
    assert reason(verifier, unsigned) == "algorithm not allowed"


def test_missing_alg_header_rejected(verifier):
    assert reason(verifier, hs256(seg({"typ": "JWT"}), seg(claims()))) == "algorithm not allowed"


@pytest.mark.parametrize("alg", ["RS256", "ES256", "PS256", "EdDSA"])
def test_asymmetric_header_rejected(verifier, alg):
    # Random bytes where an RSA/ECDSA signature would be.
    forged = f"{seg({'alg': alg, 'typ': 'JWT'})}.{seg(claims())}.{b64(os.urandom(64))}"
    assert reason(verifier, forged) == "algorithm not allowed"


def test_key_confusion_rs256_header_with_hmac_signature_rejected(verifier):
    # Signed with the real secret by HMAC but claiming RS256: the classic confusion attack.
    forged = hs256(seg({"alg": "RS256", "typ": "JWT"}), seg(claims()))
    assert reason(verifier, forged) == "algorithm not allowed"


def test_hmac_algorithm_not_in_list_rejected(verifier):
    assert reason(verifier, token(algorithm="HS512")) == "algorithm not allowed"


def test_several_hmac_algorithms_accepted():
    v = JwtVerifier(SECRET, ("HS256", "HS384", "HS512"))
    for alg in ("HS256", "HS384", "HS512"):
        assert v.verify(token(algorithm=alg), now=NOW).role == "operator"


@pytest.mark.parametrize(
    "algs", [[], ["none"], ["RS256"], ["HS256", "ES256"], ["hs256"], ["HS256", "none"]]
)
def test_constructor_accepts_only_hmac(algs):
    with pytest.raises(ValueError):
        JwtVerifier(SECRET, algs)


@pytest.mark.parametrize("leeway", [-1, float("nan"), float("inf")])
def test_constructor_rejects_bad_leeway(leeway):
    with pytest.raises(ValueError, match="leeway"):
        JwtVerifier(SECRET, ["HS256"], leeway)


@pytest.mark.parametrize(
    "secret",
    [
        "",
        b"",
        None,
        "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----",
        "ssh-rsa AAAAB3Nza",
    ],
)
def test_constructor_rejects_unusable_secret(secret):
    with pytest.raises(ValueError, match="secret"):
        JwtVerifier(secret)


def test_short_secret_warns_once_at_construction_not_per_call(caplog, recwarn):
    with caplog.at_level("WARNING", logger="camera_service.auth"):
        v = JwtVerifier("tiny-k", ["HS256"])
    assert [r.message for r in caplog.records] == [
        "JWT secret is shorter than RFC 7518 requires for the configured algorithms"
    ]
    assert caplog.records[0].required_bytes == 32
    assert "tiny-k" not in caplog.text
    v.verify(v.mint("a", "viewer", 60))
    assert not [w for w in recwarn.list if "key" in str(w.message).lower()]


# -- signature and structure --------------------------------------------------------------------


def test_other_secret_rejected(verifier):
    assert reason(verifier, token(secret="another-secret-" + "y" * 60)) == "invalid signature"


def test_tampered_payload_rejected(verifier):
    header, _, sig = token().split(".")
    promoted = seg(claims(role="admin"))
    assert reason(verifier, f"{header}.{promoted}.{sig}") == "invalid signature"


def test_tampered_signature_rejected(verifier):
    header, payload, sig = token().split(".")
    # Flip a character in the middle: the last one may carry only padding bits.
    i = len(sig) // 2
    flipped = sig[:i] + ("A" if sig[i] != "A" else "B") + sig[i + 1 :]
    assert reason(verifier, f"{header}.{payload}.{flipped}") == "invalid signature"
    assert reason(verifier, f"{header}.{payload}.") == "invalid signature"


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "!!!.???.###",
        f"{b64(b'not json')}.{seg(claims())}.sig",
        f"{seg(['alg', 'HS256'])}.{seg(claims())}.sig",
        f"{seg({'alg': 'HS256', 'crit': ['exotic'], 'exotic': 1})}.{seg(claims())}.sig",
    ],
)
def test_malformed_tokens(verifier, bad):
    assert reason(verifier, bad) == "malformed token"


@pytest.mark.parametrize(
    "payload_bytes", [b"not json", b"[1, 2]", b'"alice"', b"null", b'{"exp": 1e999}']
)
def test_signed_but_not_a_claims_object_is_malformed(verifier, payload_bytes):
    assert reason(verifier, hs256(seg({"alg": "HS256"}), b64(payload_bytes))) == "malformed token"


def test_oversized_token_refused_before_decoding(verifier):
    big = token(padding="p" * MAX_TOKEN_LENGTH)
    assert reason(verifier, big) == "token too long"


@pytest.mark.parametrize("value", [12345, None, ["a.b.c"], b"a.b.c", 1.5, {"token": "x"}])
def test_token_of_wrong_python_type(verifier, value):
    assert reason(verifier, value) == "token must be a string"


# -- claims -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["user_id", "role", "exp"])
def test_missing_required_claim(verifier, name):
    assert reason(verifier, token(**{name: ...})) == f"missing claim: {name}"
    assert reason(verifier, token(**{name: None})) == f"missing claim: {name}"


@pytest.mark.parametrize("value", [42, "", ["alice"], {"id": "alice"}, True])
def test_user_id_must_be_non_empty_string(verifier, value):
    assert reason(verifier, token(user_id=value)) == (
        "invalid claim: user_id (expected a non-empty string)"
    )


@pytest.mark.parametrize("role", ["superuser", "Admin", "ADMIN", "viewer "])
def test_unknown_role(verifier, role):
    assert reason(verifier, token(role=role)) == f"invalid role: {role}"


def test_unknown_role_long_or_unprintable_not_echoed(verifier):
    assert reason(verifier, token(role="x" * 500)) == "invalid role: (unprintable)"
    assert reason(verifier, token(role="ad\nmin")) == "invalid role: (unprintable)"


def test_role_of_wrong_type(verifier):
    assert reason(verifier, token(role=3)) == "invalid claim: role (expected a string)"


@pytest.mark.parametrize("name", ["exp", "iat", "nbf"])
@pytest.mark.parametrize("value", ["tomorrow", True, [1], {"t": 1}])
def test_time_claims_must_be_numbers(verifier, name, value):
    assert reason(verifier, token(**{name: value})) == f"invalid claim: {name} (expected a number)"


@pytest.mark.parametrize("value", [1e300, -1e300, 10**40])
def test_exp_out_of_range(verifier, value):
    assert reason(verifier, token(exp=value)) == "invalid claim: exp (out of range)"


def test_jti_must_be_string_when_present(verifier):
    assert reason(verifier, token(jti=5)) == "invalid claim: jti (expected a string)"


def test_unknown_extra_claims_ignored(verifier):
    assert verifier.verify(token(sub="x", aud="y", extra={"a": 1}), now=NOW).user_id == "alice"


# -- time ---------------------------------------------------------------------------------------


def test_expired(verifier):
    assert reason(verifier, token(exp=int(NOW) - 1)) == "token expired"
    # exp is the first instant the token is no longer valid (as in PyJWT).
    assert reason(verifier, token(exp=int(NOW))) == "token expired"
    assert verifier.verify(token(exp=int(NOW) + 1), now=NOW).exp == NOW + 1


def test_fractional_exp_respected(verifier):
    tok = token(exp=NOW + 0.5)
    assert verifier.verify(tok, now=NOW + 0.4).exp == NOW + 0.5
    assert reason(verifier, tok, now=NOW + 0.5) == "token expired"


def test_token_expires_on_the_real_clock(verifier):
    exp = int(time.time()) + 1
    tok = token(iat=exp - 1, exp=exp)
    assert verifier.verify(tok).user_id == "alice"
    time.sleep(max(0.0, exp - time.time()) + 0.01)
    assert reason(verifier, tok, now=None) == "token expired"


def test_nbf_in_future(verifier):
    assert reason(verifier, token(nbf=int(NOW) + 30)) == "token not yet valid"
    assert verifier.verify(token(nbf=int(NOW)), now=NOW).nbf == NOW


def test_iat_in_future(verifier):
    assert reason(verifier, token(iat=int(NOW) + 30)) == "token issued in the future"
    assert verifier.verify(token(iat=int(NOW)), now=NOW).iat == NOW


def test_leeway_accepts_skew_both_ways():
    lenient = JwtVerifier(SECRET, ["HS256"], leeway=10)
    assert lenient.leeway == 10.0
    assert lenient.verify(token(exp=int(NOW) - 9), now=NOW).user_id == "alice"
    assert lenient.verify(token(nbf=int(NOW) + 9, iat=int(NOW) + 9), now=NOW).user_id == "alice"
    assert reason(lenient, token(exp=int(NOW) - 10)) == "token expired"
    assert reason(lenient, token(nbf=int(NOW) + 11)) == "token not yet valid"
    assert reason(lenient, token(iat=int(NOW) + 11)) == "token issued in the future"


# -- minting ------------------------------------------------------------------------------------


def test_mint_round_trip_and_readable_by_pyjwt(verifier):
    tok = verifier.mint("bob", "admin", 90, now=NOW)
    c = verifier.verify(tok, now=NOW + 89)
    assert (c.user_id, c.role, c.iat, c.exp) == ("bob", "admin", NOW, NOW + 90)
    assert reason(verifier, tok, now=NOW + 90) == "token expired"
    decoded = jwt.decode(
        tok, SECRET, algorithms=["HS256"], options={"verify_exp": False, "verify_iat": False}
    )
    assert decoded["user_id"] == "bob" and decoded["role"] == "admin"
    assert isinstance(decoded["jti"], str) and len(decoded["jti"]) == 36
    assert jwt.get_unverified_header(tok)["alg"] == "HS256"


def test_mint_uses_requested_or_first_algorithm():
    v = JwtVerifier(SECRET, ["HS384", "HS256"])
    assert jwt.get_unverified_header(v.mint("a", "viewer", 60))["alg"] == "HS384"
    assert jwt.get_unverified_header(v.mint("a", "viewer", 60, algorithm="HS256"))["alg"] == "HS256"
    assert v.algorithms == ("HS384", "HS256")


@pytest.mark.parametrize(
    "args,kwargs",
    [
        (("", "viewer", 60), {}),
        ((5, "viewer", 60), {}),
        (("a", "root", 60), {}),
        (("a", "viewer", 0), {}),
        (("a", "viewer", -5), {}),
        (("a", "viewer", 10**13), {}),
        (("a", "viewer", 60), {"algorithm": "HS512"}),
    ],
)
def test_mint_rejects_bad_arguments(verifier, args, kwargs):
    with pytest.raises(ValueError):
        verifier.mint(*args, **kwargs)


# -- secret resolution --------------------------------------------------------------------------


def sec(tmp_path, **over):
    base = dict(jwt_secret=None, jwt_secret_file=None, state_dir=str(tmp_path / "state"))
    base.update(over)
    return types.SimpleNamespace(**base)


def test_env_wins_over_everything(tmp_path):
    f = tmp_path / "secret"
    f.write_text("from-file\n")
    s = resolve_jwt_secret(
        sec(tmp_path, jwt_secret_file=str(f), jwt_secret="cfg"), {ENV_VAR: "env"}
    )
    assert (s.value, s.source) == ("env", "env")
    assert not (tmp_path / "state").exists()


def test_file_wins_over_config_and_trailing_newline_stripped(tmp_path):
    f = tmp_path / "secret"
    f.write_bytes(b"from-file\r\n")
    f.chmod(0o600)
    s = resolve_jwt_secret(sec(tmp_path, jwt_secret_file=str(f), jwt_secret="cfg"), {})
    assert (s.value, s.source, s.path) == (b"from-file", "file", str(f))


def test_config_used_when_no_env_or_file(tmp_path):
    s = resolve_jwt_secret(sec(tmp_path, jwt_secret="cfg"), {})
    assert (s.value, s.source) == ("cfg", "config")
    assert not (tmp_path / "state").exists()


def test_generated_when_nothing_configured_then_reused(tmp_path):
    security = sec(tmp_path)
    first = resolve_jwt_secret(security, {})
    path = tmp_path / "state" / "jwt_secret"
    assert (first.source, first.path) == ("generated", str(path))
    assert len(first.value) >= 64
    assert path.read_bytes() == first.value + b"\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    assert [p.name for p in (tmp_path / "state").iterdir()] == ["jwt_secret"]

    again = resolve_jwt_secret(security, {})
    assert (again.value, again.source) == (first.value, "state")
    other = resolve_jwt_secret(sec(tmp_path / "elsewhere"), {})
    assert other.value != first.value


def test_generated_secret_differs_per_installation(tmp_path):
    a = resolve_jwt_secret(sec(tmp_path / "a"), {})
    b = resolve_jwt_secret(sec(tmp_path / "b"), {})
    assert a.value != b.value


def test_existing_state_dir_kept(tmp_path):
    (tmp_path / "state").mkdir(mode=0o755)
    resolve_jwt_secret(sec(tmp_path), {})
    assert (tmp_path / "state" / "jwt_secret").exists()


def test_loose_permissions_on_generated_secret_fixed(tmp_path, caplog):
    security = sec(tmp_path)
    first = resolve_jwt_secret(security, {})
    path = tmp_path / "state" / "jwt_secret"
    path.chmod(0o644)
    with caplog.at_level("WARNING", logger="camera_service.auth"):
        again = resolve_jwt_secret(security, {})
    assert again.value == first.value
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "loose permissions" in caplog.text
    assert first.value.decode() not in caplog.text


def test_generated_secret_not_followed_through_symlink(tmp_path):
    (tmp_path / "state").mkdir()
    target = tmp_path / "elsewhere"
    target.write_text("attacker-chosen\n")
    (tmp_path / "state" / "jwt_secret").symlink_to(target)
    with pytest.raises(JwtSecretError, match="cannot be opened"):
        resolve_jwt_secret(sec(tmp_path), {})


def test_generated_secret_must_be_regular_file(tmp_path):
    (tmp_path / "state" / "jwt_secret").mkdir(parents=True)
    with pytest.raises(JwtSecretError, match="not a regular file"):
        resolve_jwt_secret(sec(tmp_path), {})


def test_empty_generated_secret_is_an_error(tmp_path):
    (tmp_path / "state").mkdir()
    p = tmp_path / "state" / "jwt_secret"
    p.write_text("\n")
    p.chmod(0o600)
    with pytest.raises(JwtSecretError, match="empty"):
        resolve_jwt_secret(sec(tmp_path), {})


def test_state_dir_below_a_file(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(JwtSecretError, match="cannot be opened: Not a directory"):
        resolve_jwt_secret(sec(tmp_path, state_dir=str(blocker / "state")), {})


def test_state_dir_that_cannot_be_created(tmp_path):
    # A dangling symlink in the path: nothing to read, and makedirs cannot create through it.
    (tmp_path / "dangling").symlink_to(tmp_path / "missing-target" / "deeper")
    with pytest.raises(JwtSecretError, match="cannot be created"):
        resolve_jwt_secret(sec(tmp_path, state_dir=str(tmp_path / "dangling" / "state")), {})


def test_lost_creation_race_uses_the_winners_secret(tmp_path, monkeypatch):
    from camera_service.auth import secrets as secrets_mod

    state = tmp_path / "state"
    real_publish = secrets_mod.write_private_file

    def other_process_wins(path, data, *, replace):
        # Another process links its secret in between our existence check and our link.
        real_publish(path, b"winner\n", replace=False)
        return real_publish(path, data, replace=replace)

    monkeypatch.setattr(secrets_mod, "write_private_file", other_process_wins)
    s = resolve_jwt_secret(sec(tmp_path), {})
    assert (s.value, s.source) == (b"winner", "state")
    assert sorted(p.name for p in state.iterdir()) == ["jwt_secret"]


def test_empty_env_is_an_error_not_a_fallback(tmp_path):
    with pytest.raises(JwtSecretError, match=ENV_VAR):
        resolve_jwt_secret(sec(tmp_path, jwt_secret="cfg"), {ENV_VAR: ""})


def test_empty_config_secret_is_an_error(tmp_path):
    with pytest.raises(JwtSecretError, match="jwt_secret is set but empty"):
        resolve_jwt_secret(sec(tmp_path, jwt_secret=""), {})


def test_unreadable_or_empty_secret_file(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(JwtSecretError, match="cannot be read"):
        resolve_jwt_secret(sec(tmp_path, jwt_secret_file=str(missing), jwt_secret="cfg"), {})
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(JwtSecretError, match="is empty"):
        resolve_jwt_secret(sec(tmp_path, jwt_secret_file=str(empty)), {})


def test_group_readable_secret_file_warned_not_changed(tmp_path, caplog):
    f = tmp_path / "secret"
    f.write_text("value-of-secret\n")
    f.chmod(0o640)
    with caplog.at_level("WARNING", logger="camera_service.auth"):
        resolve_jwt_secret(sec(tmp_path, jwt_secret_file=str(f)), {})
    assert "chmod 600" in caplog.text
    assert "value-of-secret" not in caplog.text
    assert stat.S_IMODE(f.stat().st_mode) == 0o640


def test_process_environment_is_the_default(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, "from-process-env")
    assert resolve_jwt_secret(sec(tmp_path)).value == "from-process-env"


def test_secret_not_in_repr(tmp_path):
    s = resolve_jwt_secret(sec(tmp_path, jwt_secret="hide-me"), {})
    assert "hide-me" not in repr(s)


def test_secret_registered_for_log_redaction(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr("camera_service.auth.secrets.register_secret", seen.append)
    resolve_jwt_secret(sec(tmp_path, jwt_secret="redact-me"), {})
    f = tmp_path / "f"
    f.write_bytes(b"from-file\n")
    resolve_jwt_secret(sec(tmp_path, jwt_secret_file=str(f)), {})
    binary = tmp_path / "bin"
    binary.write_bytes(b"\xff\xfe\x00")
    resolve_jwt_secret(sec(tmp_path, jwt_secret_file=str(binary)), {})
    assert seen == ["redact-me", "from-file"]


def test_secret_write_failure_reported(tmp_path, monkeypatch):
    def no_links(src, dst):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    with pytest.raises(JwtSecretError, match="cannot be written: Operation not permitted"):
        resolve_jwt_secret(sec(tmp_path), {})
    # The temp file was cleaned up and no half-made secret is left behind.
    assert list((tmp_path / "state").iterdir()) == []


def test_secret_vanishing_during_creation_race(tmp_path, monkeypatch):
    from camera_service.auth import secrets as secrets_mod

    monkeypatch.setattr(secrets_mod, "write_private_file", lambda *a, **k: False)
    with pytest.raises(JwtSecretError, match="vanished"):
        resolve_jwt_secret(sec(tmp_path), {})


def test_secret_chmod_failure_reported(tmp_path, monkeypatch):
    security = sec(tmp_path)
    resolve_jwt_secret(security, {})
    (tmp_path / "state" / "jwt_secret").chmod(0o644)

    def refuse(fd, mode):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "fchmod", refuse)
    with pytest.raises(JwtSecretError, match="cannot be read: Operation not permitted"):
        resolve_jwt_secret(security, {})


def test_temp_name_collision_retried(tmp_path, monkeypatch):
    from camera_service.auth import secrets as secrets_mod

    names = iter(["aaaa", "aaaa", "bbbb"])
    real_hex = secrets_mod._random.token_hex
    monkeypatch.setattr(
        secrets_mod._random, "token_hex", lambda n=None: next(names, None) or real_hex(n)
    )
    target = tmp_path / "out"
    assert secrets_mod.write_private_file(str(target), b"one", replace=False) is True
    # Leave a stray temp file with the next name so the writer must pick another.
    (tmp_path / ".out.aaaa.tmp").write_bytes(b"stray")
    assert secrets_mod.write_private_file(str(target), b"two", replace=True) is True
    assert target.read_bytes() == b"two"
    assert (tmp_path / ".out.aaaa.tmp").read_bytes() == b"stray"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
