"""Engines by name, imported only when chosen: a process that runs whisper never loads vosk.

Each entry names a module and a factory ``build(settings) -> AsrEngine`` in it. Adding an
engine is one module with a ``build`` function and one line here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from speech.asr.base import AsrEngine, AsrError
from speech.settings import AsrSettings

ENGINES: dict[str, str] = {
    "whisper": "speech.asr.whisper_engine",
    "vosk": "speech.asr.vosk_engine",
    "pocketsphinx": "speech.asr.pocketsphinx_engine",
}
"""Engine name -> module with a ``build(settings)`` factory."""


def engine_names() -> list[str]:
    return sorted(ENGINES)


def factory(name: str) -> Callable[[AsrSettings], AsrEngine]:
    """The ``build`` function of engine ``name`` (imports its module now)."""
    module_name = ENGINES.get(name)
    if module_name is None:
        raise AsrError(f"unknown recognizer {name!r}; known: {', '.join(engine_names())}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise AsrError(f"recognizer {name!r} is not installed ({exc})") from exc
    build: Callable[[AsrSettings], AsrEngine] = module.build
    return build


def build_engine(name: str, settings: AsrSettings) -> AsrEngine:
    """Load engine ``name`` with ``settings`` (slow: the model loads now)."""
    return factory(name)(settings)
