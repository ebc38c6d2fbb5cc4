"""Which engine a process uses, from ``AsrSettings``.

The rule: ``vosk`` means vosk or an error; ``pocketsphinx`` means pocketsphinx; ``auto`` means
vosk when a model path is configured and valid, else pocketsphinx (its English model ships in
the wheel, so there is always an engine). A configured path that does not exist is an error
even in ``auto``: a user who set ``VOSK_MODEL_PATH`` must hear that their model was not found
rather than silently get the weaker engine.
"""

from __future__ import annotations

import logging
from pathlib import Path

from speech.asr.base import AsrEngine, AsrError
from speech.asr.pocketsphinx_engine import PocketsphinxEngine
from speech.asr.vosk_engine import VoskEngine, check_model_dir
from speech.settings import AsrSettings

log = logging.getLogger(__name__)


def resolve_vosk_model(settings: AsrSettings) -> Path | None:
    """The vosk model directory to load, checked; None when no path is configured.

    ``settings.vosk_model_path`` already carries ``VOSK_MODEL_PATH`` (see ``load_settings``).
    Raises ``AsrError`` naming the path when it is set but missing or not a vosk model.
    """
    if settings.vosk_model_path is None:
        return None
    path = Path(settings.vosk_model_path).expanduser()
    check_model_dir(path)
    return path


def load_engine(settings: AsrSettings) -> AsrEngine:
    """Load the engine ``settings`` ask for (slow: seconds for vosk); one per process."""
    if settings.engine == "none":
        raise AsrError("speech recognition is disabled (asr.engine = none)")
    if settings.engine == "pocketsphinx":
        return PocketsphinxEngine()
    path = resolve_vosk_model(settings)
    if settings.engine == "vosk":
        if path is None and not settings.vosk_download:
            raise AsrError(
                "asr.engine is vosk but no model is configured: set asr.vosk_model_path "
                "(or VOSK_MODEL_PATH), or allow asr.vosk_download"
            )
        return VoskEngine(path, language=settings.vosk_language, download=settings.vosk_download)
    # auto
    if path is not None:
        return VoskEngine(path)
    log.info("no vosk model configured: using pocketsphinx (en-us)")
    return PocketsphinxEngine()


def engine_description(engine: AsrEngine) -> str:
    """One line for logs and the README: engine, model, load time."""
    if isinstance(engine, VoskEngine):
        model = str(engine.model_path) if engine.model_path else f"downloaded ({engine.language})"
        return f"vosk, model {model}, loaded in {engine.load_seconds:.1f} s"
    if isinstance(engine, PocketsphinxEngine):
        return (
            f"pocketsphinx, en-us model {engine.model.hmm}, loaded in {engine.load_seconds:.1f} s, "
            f"{engine.decoders_loaded} decoder(s)"
        )
    return f"{engine.name} ({type(engine).__name__})"
