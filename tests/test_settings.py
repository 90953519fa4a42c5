import pytest

from config.settings import SettingsError, load_settings


def _write(tmp_path, text):
    p = tmp_path / "operator.toml"
    p.write_text(text)
    return p


GOOD = """
[matrix]
bot_password = "a-real-generated-password"
[gate]
secret = "a-real-generated-secret"
[staff_api]
session_secret = "a-real-generated-session-secret"
"""


def test_operator_file_overrides_defaults_and_env_overrides_file(tmp_path, monkeypatch):
    path = _write(tmp_path, GOOD + "\n[http]\nport = 9090\n")
    assert load_settings(path).http.port == 9090
    monkeypatch.setenv("HEARTH_HTTP__PORT", "9191")
    assert load_settings(path).http.port == 9191


def test_invalid_value_names_key_file_and_reason(tmp_path):
    path = _write(
        tmp_path, GOOD.replace('secret = "a-real-generated-secret"', 'secret = "x"\nbudget_ms = "soon"')
    )
    with pytest.raises(SettingsError) as e:
        load_settings(path)
    msg = str(e.value)
    assert "gate.budget_ms" in msg
    assert str(path) in msg
    assert "integer" in msg


def test_unknown_key_is_refused(tmp_path):
    path = _write(tmp_path, GOOD + "\n[http]\nprot = 1\n")
    with pytest.raises(SettingsError, match=r"http\.prot"):
        load_settings(path)


def test_env_value_error_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("HEARTH_HTTP__PORT", "99999")
    with pytest.raises(SettingsError, match="HEARTH_HTTP__PORT"):
        load_settings(_write(tmp_path, GOOD))


def test_placeholder_secrets_refused_outside_development(tmp_path):
    with pytest.raises(SettingsError, match=r"gate\.secret.*operator\.toml"):
        load_settings(_write(tmp_path, GOOD.replace("a-real-generated-secret", "CHANGE-ME")))
    with pytest.raises(SettingsError, match=r"staff_api\.session_secret.*default\.toml"):
        load_settings(
            _write(tmp_path, GOOD.replace('session_secret = "a-real-generated-session-secret"', ""))
        )
    dev = load_settings(_write(tmp_path, 'environment = "development"\n'))
    assert dev.gate.secret.get_secret_value() == "CHANGE-ME"


def test_broken_toml_names_the_file(tmp_path):
    path = _write(tmp_path, "[matrix\n")
    with pytest.raises(SettingsError, match="not valid TOML") as e:
        load_settings(path)
    assert str(path) in str(e.value)


def test_toxicity_runtime_and_model_cache_dir(tmp_path):
    settings = load_settings(_write(tmp_path, GOOD))
    assert settings.moderation.toxicity_runtime == "onnx"
    assert settings.effective_model_cache_dir == settings.data_dir / "model-cache"
    path = _write(
        tmp_path, GOOD + f'\n[moderation]\ntoxicity_runtime = "torch"\nmodel_cache_dir = "{tmp_path}/m"\n'
    )
    settings = load_settings(path)
    assert settings.moderation.toxicity_runtime == "torch"
    assert settings.effective_model_cache_dir == tmp_path / "m"
    assert settings.moderation.quantize == "auto"
    assert (
        load_settings(_write(tmp_path, GOOD + "\n[moderation]\nquantize = false\n")).moderation.quantize
        is False
    )
    with pytest.raises(SettingsError, match=r"moderation\.quantize.*operator\.toml"):
        load_settings(_write(tmp_path, GOOD + '\n[moderation]\nquantize = "sometimes"\n'))
    with pytest.raises(SettingsError, match=r"moderation\.toxicity_runtime.*operator\.toml"):
        load_settings(_write(tmp_path, GOOD + '\n[moderation]\ntoxicity_runtime = "tensorrt"\n'))


def test_the_shared_staff_token_is_gone_and_says_so(tmp_path):
    """An operator file from before staff sign-in names the obsolete key and what replaced it."""
    with pytest.raises(SettingsError, match=r"staff_api.*`token` is gone.*sign in with their Matrix account"):
        load_settings(_write(tmp_path, GOOD + 'token = "an-old-shared-token"\n'))
