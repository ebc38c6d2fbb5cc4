"""Composition root: builds each call's pipeline and the per-process services from settings.

The only place that knows every package. Engines and stores are created once per process here
and handed down; nothing is a module-level singleton.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from assist.checklist import ChecklistStage
from assist.cues import CueStage
from assist.files import AssistFileError
from assist.rules_stage import RulesStage
from assist.suggestions import SuggestionStage, index_opener
from callcenter.settings import Settings
from speech.asr.base import AsrEngine
from speech.asr_stage import AsrStage
from speech.dead_air import DeadAirStage
from speech.dtmf import DtmfStage
from speech.frames import Party
from speech.load import ProcessLoad
from speech.pipeline import CallPipeline
from speech.stage import Stage
from speech.talk_over import TalkOverStage
from speech.tone import ToneStage
from speech.vad import VadStage

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StageDeps:
    """What a stage factory may use: the settings and the process's shared services."""

    settings: Settings
    asr_engine: AsrEngine | None = None
    load: ProcessLoad | None = None
    """The process's load state (live calls in a worker): what is shed under overload."""


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
        load=deps.load,
    )


def _knowledge(deps: StageDeps) -> Stage | None:
    s = deps.settings
    if not s.knowledge.enabled or deps.asr_engine is None:
        return None
    opener = index_opener(s.knowledge.kb_dir, s.kb_index_path, auto_index=s.knowledge.auto_index)
    return SuggestionStage(opener, s.knowledge)


def _assist(build: Callable[[], Stage], what: str) -> Stage | None:
    """A file-driven assist stage; the files are read per call (an edit applies to the next call;
    ``serve`` validated them at start), so one broken by an edit switches the stage off."""
    try:
        return build()
    except AssistFileError as exc:
        log.error("%s switched off for this call: %s", what, exc)
        return None


def check_assist_files(settings: Settings) -> None:
    """Validate the playbook, rules and checklist files the settings name, at start (``serve``):
    raises ``AssistFileError`` naming file, path and problem."""
    from assist.checklist import load_checklists
    from assist.playbook import load_playbook
    from assist.rules_model import load_rules

    if settings.cues.enabled:
        load_playbook(settings.cues.playbook)
    if settings.rules.file is not None:
        load_rules(settings.rules.file)
    if settings.checklist.enabled:
        load_checklists(settings.checklist.file)
    settings.qa.load()  # FormError is an AssistFileError


def _cues(deps: StageDeps) -> Stage | None:
    s = deps.settings.cues
    return _assist(lambda: CueStage(s), "de-escalation cues") if s.enabled else None


def _rules(deps: StageDeps) -> Stage | None:
    s = deps.settings.rules
    return _assist(lambda: RulesStage(s), "live rules") if s.file is not None else None


def _checklist(deps: StageDeps) -> Stage | None:
    s = deps.settings.checklist
    if not s.enabled or deps.asr_engine is None:
        return None  # it ticks on transcripts
    return _assist(lambda: ChecklistStage(s), "script checklist")


def _qa(deps: StageDeps) -> Stage | None:
    s = deps.settings.qa
    if not s.forms or not s.live or deps.asr_engine is None:
        return None  # answers hang on what was said: without transcripts only the final card
    from qa.live import ScorecardStage

    return _assist(lambda: ScorecardStage(s.load(), s), "live scorecards")  # FormError is an AssistFileError


STAGES: tuple[StageFactory, ...] = (
    lambda d: VadStage(d.settings.vad),  # first: most stages react to speech onsets and ends
    lambda d: DtmfStage(d.settings.dtmf),
    lambda d: DeadAirStage(d.settings.dead_air),  # after VAD and DTMF: both are activity
    lambda d: TalkOverStage(d.settings.talk_over),
    _asr,  # its transcripts re-enter here, so only the stages below see them
    lambda d: ToneStage(d.settings.tone, load=d.load),  # last: scores utterances with their finals
    lambda d: ToneStage(d.settings.tone, party=Party.AGENT, alerts=False, load=d.load),  # the agent's tone
    _knowledge,  # on caller finals: knowledge suggestions (off the loop)
    _cues,  # after the tone stages: their alerts raise cues
    _rules,
    _checklist,
    _qa,  # last: scores on everything the stages above emit
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
    model's first decode, librosa's first pitch analysis, VADER's word list: ~1 s, which otherwise
    lands on the event loop at the first utterance and delays that call's final transcript and
    IVR choice). Blocking: run it off the event loop."""
    engine = load_asr_engine(settings)
    if engine is not None:
        engine.warm_up()
    from speech.lexicon import warm_up as warm_lexicon
    from speech.prosody import warm_up as warm_prosody

    warm_prosody()
    warm_lexicon()
    return engine


def build_pipeline(call_id: str, settings: Settings, engine: AsrEngine | None,
                   load: ProcessLoad | None = None) -> CallPipeline:
    """One call's stage chain, in :data:`STAGES` order. ``load``: the worker's load state (its
    stages shed work under overload, its pipeline reports frame lateness)."""
    deps = StageDeps(settings, engine, load)
    stages = [stage for factory in STAGES if (stage := factory(deps)) is not None]
    return CallPipeline(call_id, stages, lateness=load.lateness_meter() if load is not None else None)
