"""Settings: file plus environment overrides, typed; homes are created once."""

from __future__ import annotations

import pytest

from appliance.config import load_settings, resolve_home
from appliance.errors import ConfigError
from appliance.home import init_home


def test_environment_overrides_the_file(tmp_path, monkeypatch):
    init_home(tmp_path / "h")
    assert load_settings(tmp_path / "h").dicom.port == 11112
    monkeypatch.setenv("APPLIANCE_DICOM__PORT", "11999")
    assert load_settings(tmp_path / "h").dicom.port == 11999


def test_bad_values_are_reported(tmp_path, monkeypatch):
    init_home(tmp_path / "h")
    monkeypatch.setenv("APPLIANCE_DICOM__AE_TITLE", "A" * 17)
    with pytest.raises(ConfigError, match="AE title"):
        load_settings(tmp_path / "h")


def test_init_refuses_an_existing_home(tmp_path):
    init_home(tmp_path / "h")
    with pytest.raises(ConfigError, match="already"):
        init_home(tmp_path / "h")


def test_home_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("APPLIANCE_HOME", raising=False)
    with pytest.raises(ConfigError, match="APPLIANCE_HOME"):
        resolve_home(None)
    monkeypatch.setenv("APPLIANCE_HOME", str(tmp_path))
    assert resolve_home(None) == tmp_path.resolve()


def test_not_a_home(tmp_path):
    with pytest.raises(ConfigError, match="appliance init"):
        load_settings(tmp_path)


@pytest.mark.parametrize(
    "section",
    [
        "[assembly]\nquiet_second = 30\n",
        "[dicom.tls]\nenabeld = true\n",
        "[[inference.rules]]\nmodel = 'x'\nmodalty = ['CT']\n",
        "[deidentify.profiles.mine]\noptions = []\nredact_burned_in = false\n",
    ],
)
def test_a_misspelled_key_at_any_level_is_refused(tmp_path, section):
    init_home(tmp_path / "h")
    (tmp_path / "h" / "appliance.toml").write_text(section)  # the one section, on the defaults
    with pytest.raises(ConfigError, match="Extra inputs are not permitted"):
        load_settings(tmp_path / "h")


def test_a_misspelled_environment_override_is_refused(tmp_path, monkeypatch):
    init_home(tmp_path / "h")
    monkeypatch.setenv("APPLIANCE_ASSEMBLY__QUIET_SECOND", "3")
    with pytest.raises(ConfigError, match="quiet_second"):
        load_settings(tmp_path / "h")


def test_a_file_that_is_not_toml_is_one_clear_error(tmp_path):
    init_home(tmp_path / "h")
    (tmp_path / "h" / "appliance.toml").write_text("[dicom\nport = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(tmp_path / "h")


def _setting_paths(model, prefix=()):  # type: ignore[no-untyped-def]
    from pydantic import BaseModel

    for name, field in model.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            yield from _setting_paths(field.annotation, (*prefix, name))
        else:
            yield (*prefix, name)


def test_init_writes_every_section_and_setting(tmp_path):
    from appliance.config import Settings

    init_home(tmp_path / "h")
    text = (tmp_path / "h" / "appliance.toml").read_text()
    for path in _setting_paths(Settings):
        if path in {("home",), ("deidentify", "profiles")}:
            continue
        section = "[" + ".".join(path[:-1]) + "]"
        assert path[:-1] == () or section in text or path == ("inference", "rules"), section
        assert f"# {path[-1]} = " in text or path == ("inference", "rules"), path
    assert "[[inference.rules]]" in text and "[audit.syslog]" in text and "# workers = 0" in text


def test_a_failed_init_leaves_no_half_made_home(tmp_path, monkeypatch):
    from appliance import home as home_module

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError("the disk went away")

    monkeypatch.setattr(home_module, "install_demo_model", broken)
    with pytest.raises(OSError):
        init_home(tmp_path / "new")
    assert not (tmp_path / "new").exists()
    (tmp_path / "mounted").mkdir()
    (tmp_path / "mounted" / "lost+found").mkdir()  # a folder that existed, as a volume's root does
    with pytest.raises(OSError):
        init_home(tmp_path / "mounted")
    assert [p.name for p in (tmp_path / "mounted").iterdir()] == ["lost+found"]
