"""Settings: strict casting from MESHLOGS_* variables, overrides, validation, and the docs."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshlogs.config import Settings
from meshlogs.docgen import update_file
from meshlogs.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_defaults() -> None:
    s = Settings.load({})
    assert (s.port, s.host, s.allow_signup, s.max_line_bytes) == (54321, "127.0.0.1", False, 65536)
    assert s.url == "http://127.0.0.1:54321"


def test_environment_is_cast() -> None:
    s = Settings.load(
        {
            "MESHLOGS_PORT": "8080",
            "MESHLOGS_ALLOW_SIGNUP": "yes",
            "MESHLOGS_WRITER_FLUSH_INTERVAL": "0.2",
            "MESHLOGS_DATA_DIR": "/tmp/x",
        }
    )
    assert (s.port, s.allow_signup, s.writer_flush_interval, s.data_dir) == (8080, True, 0.2, Path("/tmp/x"))


def test_overrides_beat_environment_and_none_is_ignored() -> None:
    s = Settings.load({"MESHLOGS_PORT": "8080"}, port=9090, host=None)
    assert (s.port, s.host) == (9090, "127.0.0.1")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MESHLOGS_PORT": "abc"}, "MESHLOGS_PORT: expected int, got 'abc'"),
        ({"MESHLOGS_ALLOW_SIGNUP": "maybe"}, "MESHLOGS_ALLOW_SIGNUP: expected bool"),
        ({"MESHLOGS_PORT": "70000"}, "MESHLOGS_PORT must be 0..65535"),
        ({"MESHLOGS_JWT_SECRET": "short"}, "at least 32 characters"),
        ({"MESHLOGS_MAX_LINE_BYTES": "10"}, "at least 1024"),
        ({"MESHLOGS_LOG_LEVEL": "loud"}, "MESHLOGS_LOG_LEVEL"),
        ({"MESHLOGS_WRITER_FLUSH_INTERVAL": "0"}, "must be > 0"),
        ({"MESHLOGS_REALTIME_AUTHZ_VISIBILITY_TIMEOUT": "0"}, "VISIBILITY_TIMEOUT must be > 0"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.load(env)


def test_unknown_override_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown setting"):
        Settings.load({}, colour="blue")


def test_every_setting_is_documented() -> None:
    doc = (ROOT / "docs" / "reference" / "settings.md").read_text()
    for var, _default, help_text in Settings.documented():
        assert f"`{var}`" in doc, f"{var} missing from docs/reference/settings.md"
        assert help_text.strip(), f"{var} has no help text"


def test_generated_docs_are_fresh() -> None:
    for path in (ROOT / "docs" / "reference").glob("*.md"):
        assert update_file(path, check=True), f"{path} is stale: run python -m meshlogs.docgen"
