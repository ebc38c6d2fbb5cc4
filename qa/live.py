"""Live scorecards: a pipeline stage that re-scores the call on the events that can change an
answer and emits ``qa.scorecard`` when one did.

Scoring is the same pure function as at wrap-up (``qa.scorecard.score_call``) over the events so
far. It runs on relevant events only (finals, tone, dead air, talk-over, hold, rules, cues,
parties, IVR), at most once per ``min_interval_s`` of call time, plus every ``tick_s`` (response
windows close with time, not with events). A full call is a few hundred events: each scoring is
well under a millisecond of work per question, on the event loop like the other sync stages.
"""

from __future__ import annotations

from qa.forms import Form
from qa.scorecard import Memo, answers_of, score_call
from qa.settings import QaSettings
from speech.events import (
    AssistCue,
    DeadAirEnded,
    DtmfDigit,
    Event,
    FinalTranscript,
    HoldEnded,
    HoldStarted,
    IvrStep,
    PartyJoined,
    PartyLeft,
    QaScorecard,
    RuleMatched,
    SpeechEnded,
    TalkOver,
    ToneAlert,
    ToneUpdate,
)
from speech.frames import AudioFrame
from speech.stage import Stage

RELEVANT = (FinalTranscript, ToneAlert, ToneUpdate, DeadAirEnded, TalkOver, HoldStarted, HoldEnded,
            RuleMatched, AssistCue, PartyJoined, PartyLeft, IvrStep, DtmfDigit, SpeechEnded)


class ScorecardStage(Stage):
    """Scores one call on the configured forms as it goes."""

    name = "qa"

    def __init__(self, forms: list[Form], settings: QaSettings | None = None) -> None:
        self.forms = forms
        self.settings = settings or QaSettings()
        self.events: list[Event] = []
        self.answers: dict[str, dict[str, str]] = {}
        self._dirty = False
        self._last = float("-inf")
        self._memo: Memo = {}  # phrase matches of this call's utterances, kept between scorings

    def process_event(self, event: Event) -> list[Event]:
        self.events.append(event)
        if isinstance(event, RELEVANT):
            self._dirty = True
        return self._maybe(event.t)

    def process_frame(self, frame: AudioFrame) -> list[Event]:
        return self._maybe(frame.end)

    def finish(self, t: float) -> list[Event]:
        return self._score(t) if self._dirty else []

    def _maybe(self, t: float) -> list[Event]:
        if t - self._last < self.settings.min_interval_s:
            return []
        if self._dirty or (t - self._last >= self.settings.tick_s and self.answers):
            return self._score(t)
        return []

    def _score(self, t: float) -> list[Event]:
        self._dirty = False
        self._last = t
        out: list[Event] = []
        for form in self.forms:
            card = score_call(form, self.events, memo=self._memo)
            now = answers_of(card)
            before = self.answers.get(form.id)
            if now == before:
                continue
            changed = tuple(q for q, a in now.items() if before is None or before.get(q) != a)
            self.answers[form.id] = now
            out.append(QaScorecard(t=t, form_id=form.id, score=card["score"], changed=changed, scorecard=card))
        return out


def final_scorecards(forms: list[Form], events: list[Event], summary: object = None) -> list[QaScorecard]:
    """The final scorecard of a whole call on each form, as events to store with it."""
    t = max((e.t for e in events), default=0.0)
    call_id = next((e.call_id for e in events if e.call_id), "")
    out = []
    for form in forms:
        card = score_call(form, events, summary, final=True)
        out.append(QaScorecard(call_id=call_id, t=t, form_id=form.id, final=True, score=card["score"],
                               changed=tuple(answers_of(card)), scorecard=card))
    return out
