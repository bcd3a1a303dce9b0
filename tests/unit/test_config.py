"""Configuration: typed values, environment overrides, and errors that name the file, the key and the
expectation — read by the library and through the CLI."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bcconnect.config import AuthMode, SourceKind, _validate, load_adapter, load_adapters, load_settings
from bcconnect.errors import ConfigError


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_values_are_typed_and_relative_paths_resolve_against_the_file(tmp_path: Path) -> None:
    """Ports are ints, modes are enums, and a relative SQLite path is relative to the config file."""
    cfg = _write(tmp_path / "etc" / "bcconnect.toml", '[api]\nport = 9090\n[auth]\nmode = "none"\n')
    settings = load_settings(cfg, environ={})
    assert settings.api.port == 9090
    assert settings.auth.mode is AuthMode.NONE
    assert settings.store_url() == f"sqlite:///{tmp_path / 'etc' / 'bcconnect-data' / 'bcconnect.db'}"


def test_environment_variables_override_the_file(tmp_path: Path) -> None:
    """BCCONNECT_<SECTION>_<KEY> wins over the file, converted to the declared type."""
    cfg = _write(tmp_path / "bcconnect.toml", "[api]\nport = 9090\n")
    settings = load_settings(cfg, environ={"BCCONNECT_API_PORT": "7070", "BCCONNECT_STORE_URL": "postgresql://x/y"})
    assert settings.api.port == 7070
    assert settings.store_url() == "postgresql://x/y"


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        ('[api]\nport = "eighty"\n', "api.port", "expected int"),
        ("[api]\nprot = 80\n", "api.prot", "expected one of"),
        ('[auth]\nmode = "maybe"\n', "auth.mode", "one of 'jwt', 'none'"),
        ('[store]\nurl = "mysql://db"\n', "store.url", "sqlite:///"),
        ('[store]\nread_url = "sqlite:///replica.db"\n', "store.read_url", "streaming replica"),
        ("[store]\nread_max_lag_seconds = 0\n", "store.read_max_lag_seconds", "positive"),
        ("[api]\nport = 70000\n", "api.port", "TCP port"),
        ("api = 3\n", "api", "expected a table"),
    ],
)
def test_a_bad_value_names_file_key_and_expectation(tmp_path: Path, text: str, key: str, expected: str) -> None:
    """Each mistake is reported with where it is and what would have been right."""
    cfg = _write(tmp_path / "bcconnect.toml", text)
    with pytest.raises(ConfigError) as caught:
        load_settings(cfg, environ={})
    message = str(caught.value)
    assert str(cfg) in message
    assert repr(key) in message
    assert expected in message


def test_a_bad_environment_value_is_reported_too(tmp_path: Path) -> None:
    """An override that does not convert names its key like a file value would."""
    with pytest.raises(ConfigError, match=r"'api\.port'.*expected int"):
        load_settings(tmp_path / "absent.toml", environ={"BCCONNECT_API_PORT": "http"})


def test_toml_syntax_errors_name_the_file(tmp_path: Path) -> None:
    """A file that is not TOML at all is named, with the parser's reason."""
    cfg = _write(tmp_path / "bcconnect.toml", "[api\nport = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(cfg, environ={})


def test_adapter_files_load_and_check_what_their_kind_needs(tmp_path: Path) -> None:
    """A FHIR adapter needs a base URL; names must be unique across the adapters folder."""
    good = _write(
        tmp_path / "a" / "adapter.toml",
        'name = "a"\nods_code = "RL4"\nkind = "fhir_api"\nmapping_set = "m"\nbase_url = "http://x"\n',
    )
    assert load_adapter(good).kind is SourceKind.FHIR_API
    bad = _write(
        tmp_path / "b" / "adapter.toml", 'name = "b"\nods_code = "RNA"\nkind = "json_api"\nmapping_set = "m"\n'
    )
    with pytest.raises(ConfigError, match=r"'base_url'.*needs base_url"):
        load_adapter(bad)
    bad.write_text(good.read_text())
    with pytest.raises(ConfigError, match="adapter name 'a' is also used by"):
        load_adapters(tmp_path)


def test_a_secret_is_read_from_the_variable_the_file_names(tmp_path: Path) -> None:
    """Secrets are never in the file; a named variable that is unset is a clear error."""
    cfg = _write(
        tmp_path / "x" / "adapter.toml",
        'name = "x"\nods_code = "RL4"\nkind = "fhir_api"\nmapping_set = "m"\nbase_url = "http://x"\n'
        '[auth]\ntype = "oauth2_client_credentials"\nclient_id = "c"\nclient_secret_env = "X_SECRET"\n',
    )
    adapter = load_adapter(cfg)
    assert adapter.secret(adapter.auth.client_secret_env, {"X_SECRET": "s3"}) == "s3"
    with pytest.raises(ConfigError, match="X_SECRET"):
        adapter.secret(adapter.auth.client_secret_env, {})


def test_the_cli_reports_a_bad_config_in_one_sentence_with_exit_code_2(tmp_path: Path) -> None:
    """Through the real command line: exit code 2 and one line naming file and key."""
    cfg = _write(tmp_path / "bcconnect.toml", '[api]\nport = "eighty"\n')
    result = subprocess.run(
        [sys.executable, "-m", "bcconnect.cli.main", "--config", str(cfg), "status"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(cfg) in lines[0]
    assert "'api.port'" in lines[0]


def test_the_cli_reports_usage_errors_with_exit_code_2() -> None:
    """An unknown command is one sentence and exit code 2, not a traceback."""
    result = subprocess.run(
        [sys.executable, "-m", "bcconnect.cli.main", "frobnicate"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "invalid choice: 'frobnicate'" in result.stderr
    assert "Traceback" not in result.stderr


def test_commands_open_the_store_next_to_the_config_file_whatever_the_cwd(tmp_path: Path) -> None:
    """A relative SQLite path belongs to the config file's folder, not to where the command runs."""
    cfg = _write(tmp_path / "deploy" / "bcconnect.toml", '[store]\nurl = "sqlite:///data/store.db"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "bcconnect.cli.main", "--config", str(cfg), "db", "upgrade"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "deploy" / "data" / "store.db").is_file()
    assert not any(elsewhere.rglob("*.db"))


def test_the_readme_example_configuration_loads(tmp_path: Path) -> None:
    """The configuration reference in README.md is a valid bcconnect.toml (docs that cannot rot)."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    found = re.search(r"`bcconnect.toml` \(every key optional.*?```toml\n(.*?)```", readme, re.S)
    assert found, "README.md has no bcconnect.toml example"
    settings = load_settings(_write(tmp_path / "bcconnect.toml", found.group(1)), environ={})
    assert settings.auth.issuers
    assert settings.security.max_query_length == 4096


def test_every_problem_in_the_file_and_the_environment_is_reported_at_once(tmp_path: Path) -> None:
    """One reading reports all mistakes, each naming where it came from (file or variable), key and expectation."""
    cfg = _write(
        tmp_path / "bcconnect.toml",
        '[api]\nport = "eighty"\nprot = 1\n[auth]\nmode = "maybe"\n[logging]\nformat = "xml"\n'
        '[store]\nurl = "mysql://db"\n',
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(cfg, environ={"BCCONNECT_SECURITY_RATE_LIMIT_BURST": "lots"})
    problems = {p.key: str(p) for p in caught.value.problems}
    assert set(problems) == {
        "api.port",
        "api.prot",
        "auth.mode",
        "logging.format",
        "store.url",
        "security.rate_limit_burst",
    }
    assert problems["api.port"] == f"{cfg}, key 'api.port': expected int, got 'eighty'"
    assert "expected one of: base_path, default_count" in problems["api.prot"]
    assert "expected one of 'jwt', 'none', got 'maybe'" in problems["auth.mode"]
    assert "expected 'auto', 'json' or 'console', got 'xml'" in problems["logging.format"]
    assert problems["security.rate_limit_burst"].startswith("environment variable BCCONNECT_SECURITY_RATE_LIMIT_BURST")
    message = str(caught.value)
    assert message.splitlines()[0] == "6 problems in the configuration:"
    assert len(message.splitlines()) == 7


def test_a_bad_port_in_the_environment_is_blamed_on_the_variable_not_the_file(tmp_path: Path) -> None:
    """The file is fine; the override is not: the message names the variable (and the key it sets)."""
    cfg = _write(tmp_path / "bcconnect.toml", "[api]\nport = 9090\n")
    for value, expected in (("http", "expected int, got 'http'"), ("70000", "expected a TCP port 1–65535")):
        with pytest.raises(ConfigError) as caught:
            load_settings(cfg, environ={"BCCONNECT_API_PORT": value})
        message = str(caught.value)
        assert message.startswith("environment variable BCCONNECT_API_PORT, key 'api.port': "), message
        assert expected in message
        assert str(cfg) not in message


def test_lists_come_from_toml_arrays_or_comma_separated_variables(tmp_path: Path) -> None:
    cfg = _write(tmp_path / "bcconnect.toml", '[security]\nsensitive_labels = ["s|A", "s|B"]\n')
    assert load_settings(cfg, environ={}).security.sensitive_labels == ("s|A", "s|B")
    env = {"BCCONNECT_SECURITY_SENSITIVE_LABELS": "s|C, s|D"}
    assert load_settings(cfg, environ=env).security.sensitive_labels == ("s|C", "s|D")


@dataclass(frozen=True, slots=True)
class Inner:
    """A table with a field kind the old loader did not know (``int | None``)."""

    limit: int | None = None


@dataclass(frozen=True, slots=True)
class Outer:
    """A table with an enum and a nested table."""

    kind: SourceKind = SourceKind.HL7V2
    inner: Inner = field(default_factory=Inner)


def test_new_kinds_of_field_need_no_loader_change() -> None:
    """Optional ints, enums and nested tables validate by their declared types (no annotation-string matching)."""
    good, problems = _validate(Outer, {"kind": "json_api", "inner": {"limit": 3}}, label="x.toml")
    assert problems == []
    assert good == Outer(SourceKind.JSON_API, Inner(3))
    _, problems = _validate(Outer, {"kind": "ftp", "inner": {"limit": "many", "extra": 1}}, label="x.toml")
    assert sorted(str(p) for p in problems) == [
        "x.toml, key 'inner.extra': unknown key (expected one of: limit)",
        "x.toml, key 'inner.limit': expected int, got 'many'",
        "x.toml, key 'kind': expected one of 'fhir_api', 'json_api', 'hl7v2', got 'ftp'",
    ]


def test_the_problems_of_every_adapter_file_are_reported_together(tmp_path: Path) -> None:
    _write(tmp_path / "a" / "adapter.toml", 'name = "a"\nods_code = "RL4"\nkind = "fhir_api"\nmapping_set = "m"\n')
    _write(
        tmp_path / "b" / "adapter.toml",
        'name = "b"\nods_code = "RBK"\nkind = "hl7v2"\nmapping_set = "m"\n[fetch]\npage_size = 0\n'
        '[hl7v2]\nmode = "ftp"\nlisten_port = 0\n',
    )
    with pytest.raises(ConfigError) as caught:
        load_adapters(tmp_path)
    found = sorted((p.file, p.key) for p in caught.value.problems)
    a, b = str(tmp_path / "a" / "adapter.toml"), str(tmp_path / "b" / "adapter.toml")
    assert found == [(a, "base_url"), (b, "fetch.page_size"), (b, "hl7v2.listen_port"), (b, "hl7v2.mode")]


def test_the_cli_lists_every_problem_and_exits_2(tmp_path: Path) -> None:
    cfg = _write(tmp_path / "bcconnect.toml", '[api]\nport = "eighty"\n[auth]\nmode = "maybe"\n')
    result = subprocess.run(
        [sys.executable, "-m", "bcconnect.cli.main", "--config", str(cfg), "status"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "BCCONNECT_API_HOST": "127.0.0.1"},
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "bcconnect: error: 2 problems in the configuration:"
    assert any("'api.port': expected int" in line for line in lines[1:])
    assert any("'auth.mode': expected one of" in line for line in lines[1:])
    assert "Traceback" not in result.stderr
