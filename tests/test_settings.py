from __future__ import annotations

from pathlib import Path

import pytest

from callcenter.settings import SettingsError, load_settings


def test_file_env_and_overrides_layer_in_order(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[dead_air]\nthreshold_s = 9\n[vad]\naggressiveness = 1\n[sip]\nport = 5099\n")
    s = load_settings(cfg, {"vad.aggressiveness": 3}, environ={"CALLCENTER_DEAD_AIR__THRESHOLD_S": "4"})
    assert s.dead_air.threshold_s == 4.0  # env beats file
    assert s.vad.aggressiveness == 3  # CLI beats file
    assert s.sip.port == 5099  # file beats default


def test_vosk_model_path_env_is_honoured() -> None:
    s = load_settings(environ={"VOSK_MODEL_PATH": "/models/vosk-en"})
    assert s.asr.vosk_model_path == Path("/models/vosk-en")


def test_settings_are_frozen() -> None:
    s = load_settings(environ={})
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        s.dead_air.threshold_s = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    "text, needle",
    [("[dead_air]\nthreshold_s = -1\n", "threshold_s"), ("[nope]\nx=1\n", "nope"), ("not toml [", "invalid TOML")],
)
def test_bad_settings_are_clear_errors(tmp_path: Path, text: str, needle: str) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    with pytest.raises(SettingsError, match=needle):
        load_settings(cfg, environ={})


def test_missing_config_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="not found"):
        load_settings(tmp_path / "missing.toml", environ={})
