"""Composition root: builds each call's pipeline and the per-process services from settings.

The only place that knows every package. Engines and stores are created once per process here
and handed down; nothing is a module-level singleton.
"""

from __future__ import annotations

from callcenter.settings import Settings
from speech.asr.base import AsrEngine
from speech.asr_stage import AsrStage
from speech.dead_air import DeadAirStage
from speech.dtmf import DtmfStage
from speech.pipeline import CallPipeline
from speech.talk_over import TalkOverStage
from speech.tone import ToneStage
from speech.vad import VadStage


def load_asr_engine(settings: Settings) -> AsrEngine | None:
    """The process's one recognizer model, or None when ASR is switched off."""
    if settings.asr.engine == "none":
        return None
    from speech.asr.select import load_engine

    return load_engine(settings.asr)


def build_pipeline(call_id: str, settings: Settings, engine: AsrEngine | None) -> CallPipeline:
    """One call's stage chain: VAD → DTMF → dead air → talk-over → ASR → tone."""
    holder: dict[str, CallPipeline] = {}
    stages = [
        VadStage(settings.vad),
        DtmfStage(settings.dtmf),
        DeadAirStage(settings.dead_air),
        TalkOverStage(settings.talk_over),
    ]
    if engine is not None:
        stages.append(
            AsrStage(
                engine,
                lambda event: holder["p"].asr_emit(event),
                preroll_ms=settings.vad.preroll_ms,
                partials=settings.asr.partials,
                max_utterance_s=settings.asr.max_utterance_s,
            )
        )
    stages.append(ToneStage(settings.tone))
    pipeline = CallPipeline(call_id, stages)
    holder["p"] = pipeline
    return pipeline
