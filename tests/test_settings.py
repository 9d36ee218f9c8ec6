"""Settings: yes/no variables parse strictly, and a bad value is said plainly (in the app too)."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from app.settings import Settings, SettingsError
from tests.helpers import ROOT

ENTRY = str(ROOT / "app" / "streamlit_app.py")
FLAGS = ("TURNLENS_READ_ONLY", "TURNLENS_UMAP_WARMUP")


@pytest.fixture(autouse=True)
def clean_flags(monkeypatch):
    for name in FLAGS:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("raw", ["1", "true", "yes", "on", "ON", " On ", "TRUE", "Yes\n"])
def test_every_yes_word_switches_read_only_on(monkeypatch, raw):
    monkeypatch.setenv("TURNLENS_READ_ONLY", raw)
    assert Settings.from_env().read_only is True


@pytest.mark.parametrize("raw", ["0", "false", "no", "off", "OFF", " Off ", "False", ""])
def test_every_no_word_and_empty_switch_umap_warmup_off_or_keep_read_only_off(monkeypatch, raw):
    monkeypatch.setenv("TURNLENS_READ_ONLY", raw)
    assert Settings.from_env().read_only is False
    if raw:  # empty means "not set": the warm-up keeps its default, on
        monkeypatch.setenv("TURNLENS_UMAP_WARMUP", raw)
        assert Settings.from_env().umap_warmup is False


def test_unset_flags_take_their_defaults():
    settings = Settings.from_env()
    assert settings.read_only is False and settings.umap_warmup is True


@pytest.mark.parametrize("name", FLAGS)
@pytest.mark.parametrize("raw", ["maybe", "2", "enabled", "y", "nein", "o n"])
def test_an_unknown_word_is_an_error_naming_variable_value_and_words(monkeypatch, name, raw):
    monkeypatch.setenv(name, raw)
    with pytest.raises(SettingsError) as info:
        Settings.from_env()
    message = str(info.value)
    assert info.value.variable == name and isinstance(info.value, ValueError)
    assert f"{name}={raw!r}" in message
    assert all(word in message for word in ("1, true, yes, on", "0, false, no, off"))


def test_the_app_shows_a_bad_setting_as_an_error_not_a_traceback(monkeypatch, tmp_path):
    monkeypatch.setenv("TURNLENS_DB", str(tmp_path / "app.duckdb"))
    monkeypatch.setenv("TURNLENS_READ_ONLY", "**maybe**")
    at = AppTest.from_file(ENTRY, default_timeout=60).run()
    assert not at.exception, at.exception
    assert [e.value for e in at.error] == ["A setting is not valid: TURNLENS_READ_ONLY"]
    assert "TURNLENS_READ_ONLY='**maybe**' is not a yes/no value" in at.text[0].value  # as text, not Markdown
    assert not (tmp_path / "app.duckdb").exists()  # stopped before the database was touched
