"""`camera-service` entry point: check-config output and exit codes, --version, usage errors."""

import orjson
import pytest

from camera_service import __version__
from camera_service.cli import main


def write(tmp_path, text):
    path = tmp_path / "config.toml"
    path.write_text(text)
    return str(path)


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"camera-service {__version__}"


def test_check_config_prints_effective_config_with_secrets_masked(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CAMERA_SERVICE_SERVER_PORT", raising=False)
    path = write(tmp_path, '[server]\nport = 9100\n[security]\njwt_secret = "hunter2-secret"\n')
    assert main(["check-config", "--config", path]) == 0
    out, err = capsys.readouterr()
    effective = orjson.loads(out)
    assert effective["server"]["port"] == 9100
    assert effective["security"]["jwt_secret"] == "***"
    assert "hunter2-secret" not in out + err
    assert effective["camera"]["device_dir"] == "/dev"
    assert f"configuration OK (source: {path})" in err


def test_check_config_env_override(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CAMERA_SERVICE_SERVER_PORT", "9200")
    assert main(["check-config", "--config", write(tmp_path, "[server]\nport = 9100\n")]) == 0
    assert orjson.loads(capsys.readouterr().out)["server"]["port"] == 9200


@pytest.mark.parametrize(
    "text,message",
    [
        ("[server]\nport = 70000\n", "server.port: expected an integer 0-65535, got 70000"),
        ("[server]\nprot = 1\n", "unknown key server.prot"),
        ("[nope]\n", "unknown section nope"),
        ("[server\n", "invalid TOML"),
    ],
)
def test_check_config_invalid_exits_1_with_the_message(tmp_path, capsys, text, message):
    assert main(["check-config", "--config", write(tmp_path, text)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("camera-service: invalid configuration: ")
    assert message in err


def test_check_config_missing_file_exits_1(tmp_path, capsys):
    assert main(["check-config", "--config", str(tmp_path / "absent.toml")]) == 1
    assert "absent.toml" in capsys.readouterr().err


def test_unknown_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["frobnicate"])
    assert exit_info.value.code == 2


def test_token_command_signs_with_the_configured_secret(tmp_path, capsys):
    import jwt

    path = write(tmp_path, f'[security]\njwt_secret = "{"k" * 40}"\nstate_dir = "{tmp_path}"\n')
    assert (
        main(["token", "--role", "operator", "--user", "ops", "--ttl", "1h", "--config", path]) == 0
    )
    token = capsys.readouterr().out.strip()
    claims = jwt.decode(token, "k" * 40, algorithms=["HS256"])
    assert (claims["user_id"], claims["role"], claims["exp"] - claims["iat"]) == (
        "ops",
        "operator",
        3600,
    )
