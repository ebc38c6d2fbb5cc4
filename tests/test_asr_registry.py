"""Engines found by name, imported lazily, describing their capabilities."""

from __future__ import annotations

import subprocess
import sys

import pytest

from speech.asr.base import AsrError, BatchEngine
from speech.asr.registry import ENGINES, build_engine, engine_names, factory
from speech.settings import AsrSettings
from tests.fakes import ScriptedEngine


def test_choosing_an_engine_imports_no_other_engine() -> None:
    code = (
        "import sys; from speech.settings import AsrSettings; from speech.asr.select import engine_name;"
        "import speech.asr_stage, speech.asr.stream;"
        "assert engine_name(AsrSettings()) == 'whisper';"
        "print(sorted(m for m in ('vosk', 'pocketsphinx', 'faster_whisper', 'ctranslate2') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unknown_engine_names_the_known_ones() -> None:
    with pytest.raises(AsrError, match="whisper") as err:
        factory("kaldi")
    assert "kaldi" in str(err.value)
    assert engine_names() == sorted(ENGINES) == ["pocketsphinx", "vosk", "whisper"]


@pytest.mark.slow
def test_capabilities_of_the_real_engines() -> None:
    whisper = build_engine("whisper", AsrSettings(workers=3))
    caps = whisper.capabilities
    assert isinstance(whisper, BatchEngine)
    assert (caps.streaming, caps.grammar, caps.sample_rate, caps.concurrency) == (False, "after", 16000, 3)
    assert whisper.pool.workers == 3  # the pool is sized from settings
    whisper.close()
    sphinx = build_engine("pocketsphinx", AsrSettings())
    caps = sphinx.capabilities
    assert (caps.streaming, caps.grammar, caps.sample_rate, caps.concurrency) == (True, "native", 16000, 1)
    sphinx.close()


def test_scripted_engine_keeps_the_streaming_defaults() -> None:
    caps = ScriptedEngine([]).capabilities
    assert caps.streaming and caps.grammar == "native" and caps.concurrency == 1
