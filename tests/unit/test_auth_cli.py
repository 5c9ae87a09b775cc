"""The `token` and `apikey` CLI commands, run in-process and as a real subprocess."""

import argparse
import io
import json
import os
import subprocess
import sys
import types

import jwt
import pytest

from camera_service.auth import Authenticator
from camera_service.auth.cli import (
    add_apikey_parser,
    add_token_parser,
    parse_ttl,
    run_apikey,
    run_token,
)
from camera_service.auth.secrets import ENV_VAR


def make_security(tmp_path, **over):
    base = dict(
        jwt_secret=None,
        jwt_secret_file=None,
        jwt_algorithms=("HS256",),
        jwt_leeway=0.0,
        state_dir=str(tmp_path / "state"),
        api_keys_file=str(tmp_path / "state" / "api_keys.json"),
    )
    base.update(over)
    return types.SimpleNamespace(**base)


@pytest.fixture
def parser():
    p = argparse.ArgumentParser(prog="camera-service")
    sub = p.add_subparsers(dest="command", required=True)
    add_token_parser(sub)
    add_apikey_parser(sub)
    return p


def run(parser, argv, security, env=None):
    args = parser.parse_args(argv)
    out, err = io.StringIO(), io.StringIO()
    if args.command == "token":
        code = run_token(args, security, out=out, err=err, env={} if env is None else env)
    else:
        code = run_apikey(args, security, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


# -- durations ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,seconds",
    [("90s", 90), ("15m", 900), ("24h", 86400), ("7d", 604800), ("3600", 3600), (" 2H ", 7200)],
)
def test_parse_ttl(text, seconds):
    assert parse_ttl(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "0h", "-5m", "1.5h", "10w", "h", "1e3", "12 h"])
def test_parse_ttl_rejects(text):
    with pytest.raises(argparse.ArgumentTypeError):
        parse_ttl(text)


# -- token --------------------------------------------------------------------------------------


def test_token_verifies_with_the_servers_generated_secret(parser, tmp_path):
    security = make_security(tmp_path)
    code, out, err = run(parser, ["token", "--role", "operator", "--user", "alice"], security)
    assert (code, err) == (0, "")
    token = out.strip()
    assert out == token + "\n"
    # The CLI created the secret; the server finds the same one and accepts the token.
    server = Authenticator(security, env={})
    assert server.secret_source == "state"
    session = server.authenticate(token)
    assert (session.user_id, session.role, session.auth_method) == ("alice", "operator", "jwt")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 86400


def test_token_with_ttl_and_configured_secret(parser, tmp_path):
    security = make_security(tmp_path, jwt_secret="k" * 64, jwt_algorithms=("HS384",))
    code, out, _ = run(
        parser, ["token", "--role", "admin", "--user", "ops", "--ttl", "15m"], security
    )
    assert code == 0
    claims = jwt.decode(out.strip(), "k" * 64, algorithms=["HS384"])
    assert (claims["user_id"], claims["role"], claims["exp"] - claims["iat"]) == (
        "ops",
        "admin",
        900,
    )
    assert Authenticator(security, env={}).authenticate(out.strip()).role == "admin"
    assert not os.path.exists(tmp_path / "state")


def test_token_honours_env_secret(parser, tmp_path):
    security = make_security(tmp_path, jwt_secret="config-secret" * 5)
    env = {ENV_VAR: "e" * 64}
    code, out, _ = run(parser, ["token", "--role", "viewer", "--user", "u"], security, env=env)
    assert code == 0
    assert Authenticator(security, env=env).authenticate(out.strip()).user_id == "u"


def test_token_errors_exit_1(parser, tmp_path):
    security = make_security(tmp_path, jwt_secret_file=str(tmp_path / "missing"))
    code, out, err = run(parser, ["token", "--role", "viewer", "--user", "u"], security)
    assert (code, out) == (1, "")
    assert err.startswith("error: security.jwt_secret_file") and "cannot be read" in err
    code, out, err = run(
        parser, ["token", "--role", "viewer", "--user", "", "--ttl", "1h"], make_security(tmp_path)
    )
    assert (code, out, err) == (1, "", "error: user_id must be a non-empty string\n")


@pytest.mark.parametrize(
    "argv",
    [
        ["token", "--role", "root", "--user", "u"],
        ["token", "--user", "u"],
        ["token", "--role", "admin"],
        ["token", "--role", "admin", "--user", "u", "--ttl", "forever"],
        ["apikey"],
        ["apikey", "create", "--role", "admin"],
        ["apikey", "create", "--role", "admin", "--name", "n", "--expires-days", "0"],
        ["apikey", "create", "--role", "admin", "--name", "n", "--expires", "soon"],
        ["apikey", "revoke"],
    ],
)
def test_bad_arguments_exit_2(parser, argv, capsys):
    with pytest.raises(SystemExit) as info:
        parser.parse_args(argv)
    assert info.value.code == 2


# -- apikey -------------------------------------------------------------------------------------


def test_apikey_round_trip(parser, tmp_path):
    security = make_security(tmp_path, jwt_secret="s" * 64)
    code, out, err = run(
        parser, ["apikey", "create", "--role", "operator", "--name", "ci"], security
    )
    assert code == 0
    key = out.strip()
    assert out == key + "\n" and len(key) >= 32
    key_id = err.split()[3]
    assert err == (
        f"created API key {key_id} (role operator, expires never); "
        "the key above is shown only this once\n"
    )

    code, out2, err2 = run(
        parser,
        ["apikey", "create", "--role", "viewer", "--name", "tmp", "--expires", "3"],
        security,
    )
    assert code == 0 and "expires 20" in err2
    key2_id = err2.split()[3]

    server = Authenticator(security, env={})
    assert server.authenticate(key).role == "operator"
    assert server.authenticate(out2.strip()).role == "viewer"

    code, listing, err = run(parser, ["apikey", "list"], security)
    assert (code, err) == (0, "")
    lines = listing.splitlines()
    assert lines[0].split() == ["KEY_ID", "NAME", "ROLE", "STATUS", "CREATED", "EXPIRES"]
    assert lines[1].split()[:4] == [key_id, "ci", "operator", "active"]
    assert lines[1].split()[5] == "never"
    assert lines[2].split()[:4] == [key2_id, "tmp", "viewer", "active"]
    assert key not in listing and key[4:] not in listing

    code, out, err = run(parser, ["apikey", "revoke", key_id], security)
    assert (code, out, err) == (0, f"revoked {key_id}\n", "")
    assert server.api_keys.reload_if_changed() is True
    with pytest.raises(Exception, match="API key revoked"):
        server.authenticate(key)

    code, out, _ = run(parser, ["apikey", "list", "--json"], security)
    rows = json.loads(out)
    assert [(r["key_id"], r["status"], r["active"]) for r in rows] == [
        (key_id, "revoked", False),
        (key2_id, "active", True),
    ]
    assert all("hash" not in r for r in rows)
    assert rows[1]["expires_at"].endswith("Z")


def test_apikey_list_empty(parser, tmp_path):
    code, out, _ = run(parser, ["apikey", "list", "--json"], make_security(tmp_path))
    assert (code, json.loads(out)) == (0, [])
    code, out, _ = run(parser, ["apikey", "list"], make_security(tmp_path))
    assert out.split() == ["KEY_ID", "NAME", "ROLE", "STATUS", "CREATED", "EXPIRES"]


def test_apikey_revoke_unknown_exit_1(parser, tmp_path):
    code, out, err = run(parser, ["apikey", "revoke", "nope"], make_security(tmp_path))
    assert (code, out, err) == (1, "", "error: no API key with id 'nope'\n")


def test_apikey_errors_exit_1(parser, tmp_path):
    security = make_security(tmp_path)
    code, _, err = run(parser, ["apikey", "create", "--role", "admin", "--name", " "], security)
    assert (code, err) == (1, "error: name must be a non-empty string\n")
    os.makedirs(security.state_dir)
    with open(security.api_keys_file, "w") as fh:
        fh.write("{broken")
    for argv in (["apikey", "list"], ["apikey", "create", "--role", "admin", "--name", "n"]):
        code, out, err = run(parser, argv, security)
        assert (code, out) == (1, "") and "not valid JSON" in err
    assert open(security.api_keys_file).read() == "{broken"


def test_unknown_subcommand_exit_2(tmp_path):
    args = argparse.Namespace(apikey_command="rotate")
    err = io.StringIO()
    assert run_apikey(args, make_security(tmp_path), err=err) == 2
    assert "unknown apikey command" in err.getvalue()


def test_real_process_uses_stdout_and_stderr(tmp_path):
    # Prints to the real streams when none are passed: the way the main CLI will call it.
    script = (
        "import argparse, sys, types\n"
        "from camera_service.auth.cli import add_apikey_parser, add_token_parser, run_apikey, run_token\n"
        "p = argparse.ArgumentParser(); s = p.add_subparsers(dest='command')\n"
        "add_token_parser(s); add_apikey_parser(s)\n"
        "a = p.parse_args(sys.argv[2:])\n"
        "sec = types.SimpleNamespace(jwt_secret=None, jwt_secret_file=None, state_dir=sys.argv[1],"
        " api_keys_file=sys.argv[1] + '/keys.json', jwt_algorithms=('HS256',), jwt_leeway=0.0)\n"
        "sys.exit(run_token(a, sec) if a.command == 'token' else run_apikey(a, sec))\n"
    )
    state = str(tmp_path / "st")
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}

    def cli(*argv):
        return subprocess.run(
            [sys.executable, "-c", script, state, *argv],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )

    created = cli("apikey", "create", "--role", "admin", "--name", "proc")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    token = cli("token", "--role", "viewer", "--user", "p", "--ttl", "90s")
    assert token.returncode == 0, token.stderr
    server = Authenticator(
        make_security(tmp_path, state_dir=state, api_keys_file=state + "/keys.json"), env={}
    )
    assert server.authenticate(key).role == "admin"
    assert server.authenticate(token.stdout.strip()).user_id == "p"
    missing = cli("apikey", "revoke", "unknown-id")
    assert (missing.returncode, missing.stdout) == (1, "")
    assert "no API key" in missing.stderr
    bad = cli("token", "--role", "nobody", "--user", "x")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
