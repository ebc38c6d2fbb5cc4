"""Composition root: builds each call's pipeline and the per-process services from settings.

The only place that knows every package. Engines and stores are created once per process here
and handed down; nothing is a module-level singleton.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from callcenter.settings import Settings
from speech.asr.base import AsrEngine
from speech.asr_stage import AsrStage
from speech.dead_air import DeadAirStage
from speech.dtmf import DtmfStage
from speech.frames import Party
from speech.pipeline import CallPipeline
from speech.stage import Stage
from speech.talk_over import TalkOverStage
from speech.tone import ToneStage
from speech.vad import VadStage


@dataclass(frozen=True, slots=True)
class StageDeps:
    """What a stage factory may use: the settings and the process's shared services."""

    settings: Settings
    asr_engine: AsrEngine | None = None


StageFactory = Callable[[StageDeps], Stage | None]
"""Builds one call's instance of a stage, or None when it is switched off."""


def _asr(deps: StageDeps) -> Stage | None:
    if deps.asr_engine is None:
        return None
    s = deps.settings
    return AsrStage(
        deps.asr_engine,
        preroll_ms=s.vad.preroll_ms,
        partials=s.asr.partials,
        max_utterance_s=s.asr.max_utterance_s,
        settings=s.asr,
    )


STAGES: tuple[StageFactory, ...] = (
    lambda d: VadStage(d.settings.vad),  # first: most stages react to speech onsets and ends
    lambda d: DtmfStage(d.settings.dtmf),
    lambda d: DeadAirStage(d.settings.dead_air),  # after VAD and DTMF: both are activity
    lambda d: TalkOverStage(d.settings.talk_over),
    _asr,  # its transcripts re-enter here, so only the stages below see them
    lambda d: ToneStage(d.settings.tone),  # last: scores utterances with their finals
    lambda d: ToneStage(d.settings.tone, party=Party.AGENT, alerts=False),  # the agent's tone, shown
)
"""The one place the stage order lives. Adding a stage: write it, add its factory here."""


def load_asr_engine(settings: Settings) -> AsrEngine | None:
    """The process's one recognizer model, or None when ASR is switched off."""
    if settings.asr.engine == "none":
        return None
    from speech.asr.select import load_engine

    return load_engine(settings.asr)


def prepare_process(settings: Settings) -> AsrEngine | None:
    """Before a process's first call: load its recognizer and pay first-use costs now (the
    model's first decode, librosa's first pitch analysis: ~1 s, which otherwise lands on the
    event loop at the first utterance and delays that call's final transcript and IVR choice).
    Blocking: run it off the event loop."""
    engine = load_asr_engine(settings)
    if engine is not None:
        engine.warm_up()
    from speech.prosody import warm_up as warm_prosody

    warm_prosody()
    return engine


def build_pipeline(call_id: str, settings: Settings, engine: AsrEngine | None) -> CallPipeline:
    """One call's stage chain, in :data:`STAGES` order."""
    deps = StageDeps(settings, engine)
    stages = [stage for factory in STAGES if (stage := factory(deps)) is not None]
    return CallPipeline(call_id, stages)
