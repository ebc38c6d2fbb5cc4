"""Evaluation forms: YAML files of sections and weighted questions, each answered automatically.

A question's ``auto`` names one generic *answer kind* (one key says which), so a new form is a
new file, not new code::

    id: standard
    version: "1"
    title: Standard call quality
    pass_score: 80
    sections:
      - id: opening
        title: Opening
        questions:
          - id: greeting
            text: Greeted the caller
            weight: 10
            auto:
              said: [thank you for calling, how can i help]
              party: agent
              within_s: 15          # after the agent joined

Kinds: ``said`` (+ ``within_s`` after the party joined / ``last_s`` before the end),
``said_before`` (one phrase set before another; na if the second never came), ``respond``
(phrases within ``within_s`` after a trigger: tone alert, tense tone, phrases, a rule, a
de-escalation cue; na without a trigger), ``max_dead_air_s``, ``max_talk_overs``,
``max_hold_s``, ``rule`` (matched or not), ``tone_end``, ``ivr`` (nodes visited, DTMF entered).
A phrase may be a pattern of content words (``anything else ... help|assist|do``, ``summar*``:
word alternatives, gaps and prefixes, see ``qa.patterns``), so a form covers the ways people say
a thing rather than one script's sentences.
Files are validated like the assist files: one ``FormError`` naming file, path and problem.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from assist.files import AssistFileError, Strict, load_model, parse_model
from assist.phrases import normalize
from qa.patterns import GAP, is_pattern

FORMS_DIR = Path(__file__).parent / "forms"
DEFAULT_FORMS = ("standard",)
PartyName = Literal["caller", "agent"]
ToneLabel = Literal["calm", "neutral", "tense", "angry"]
Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]


class FormError(AssistFileError):
    """An evaluation form is unreadable or does not follow the schema."""


def _phrases(value: tuple[str, ...]) -> tuple[str, ...]:
    if any(not p.strip() for p in value):
        raise ValueError("phrases must not be empty")
    bad = [p for p in value if is_pattern(p) and not normalize(p.replace(GAP, " ").replace("|", " "))]
    if bad:
        raise ValueError(f"pattern(s) without words: {', '.join(map(repr, bad))}")
    return value


Phrases = Annotated[tuple[str, ...], Field(min_length=1)]


class Fuzzy(Strict):
    fuzzy_threshold: float = Field(85.0, ge=50, le=100)
    """Least rapidfuzz ratio (0-100) of a phrase and a window of the heard words."""


class SaidAnswer(Fuzzy):
    """Yes when ``party`` said one of the phrases (in the window); na when the party never came."""

    said: Phrases
    party: PartyName = "agent"
    within_s: float | None = Field(None, gt=0)
    """Only utterances beginning this soon after the party joined (its first speech in a replay)."""
    last_s: float | None = Field(None, gt=0)
    """Only utterances beginning this close to the party's last speech (the closing)."""
    items: tuple[str, ...] = ()
    """Also yes when at least ``min_items`` of these were said in the window (in one utterance or
    several): a recap that lists what was done and what happens next without a marker; one alone
    is the action or a new promise, not a recap."""
    min_items: int = Field(2, ge=1)

    _check = field_validator("said")(_phrases)
    _check_items = field_validator("items")(_phrases)


class SaidBeforeAnswer(Fuzzy):
    """Yes when ``party`` said one of ``said_before`` before anyone in ``then_party`` said one of
    ``then``; no when ``then`` came first; na when ``then`` never came."""

    said_before: Phrases
    then: Phrases
    party: PartyName = "agent"
    then_party: PartyName | Literal["any"] = "agent"

    _check = field_validator("said_before", "then")(_phrases)


class Trigger(Fuzzy):
    """What a response is owed to (any of the listed kinds)."""

    party: PartyName = "caller"
    tone_alert: bool = False
    """A ``tone.alert`` about ``party``."""
    tone: tuple[ToneLabel, ...] = ()
    """A tone reading of ``party`` with one of these labels."""
    said: tuple[str, ...] = ()
    """``party`` said one of these phrases."""
    rule: tuple[str, ...] = ()
    """One of these live rules matched."""
    cue: bool = False
    """A de-escalation cue (``assist.cue``)."""

    _check = field_validator("said")(_phrases)

    @model_validator(mode="after")
    def _some(self) -> Trigger:
        if not (self.tone_alert or self.tone or self.said or self.rule or self.cue):
            raise ValueError("needs at least one of tone_alert, tone, said, rule, cue")
        return self


class RespondAnswer(Fuzzy):
    """Yes when ``party`` said one of ``respond`` within ``within_s`` after a trigger (``require``:
    after ``any`` trigger or after ``all``); na when nothing triggered."""

    respond: Phrases
    trigger: Trigger
    party: PartyName = "agent"
    within_s: float = Field(10.0, gt=0)
    require: Literal["any", "all"] = "any"

    _check = field_validator("respond")(_phrases)


HOLD_ANNOUNCEMENTS: tuple[str, ...] = (
    "please hold", "hold please", "hold on", "hold the line", "bear with me", "bear with us",
    "one moment", "just a moment", "a moment please", "give me a moment", "one second", "just a second",
    "give me a second", "one sec", "just a sec", "give me a sec", "a couple of minutes", "give me a minute", "just a minute",
    "won't be long", "right back with you", "be right back", "back with you shortly",
    "let|i'll|will|just|going|gonna ... check|look|find|pull|ask|see|confirm|search|load|get",
    "while i ... check|look|find|pull|load|get|search|confirm|speak|ask",
    "put|place|pop ... you ... hold|on", "bear ... with me|us", "for|a|one|just ... moment*|sec|second*|minute*",
    "need|have|got ... to ... check|look|ask|speak|confirm|find",
)
"""What an agent says before a silence that makes it a hold, not dead air (UK and US phrasing)."""


class DeadAirAnswer(Fuzzy):
    """Yes when no silence on ``party``'s side lasted over ``max_dead_air_s`` while it was on the
    call. A gap is the caller's side only when the agent spoke last and the caller broke it;
    holds and prompts are not silence, nor a silence the agent announced (its last utterance
    before the silence said one of ``announced``, whatever the caller briefly said since)."""

    max_dead_air_s: float = Field(gt=0)
    party: PartyName = "agent"
    announced: Phrases = HOLD_ANNOUNCEMENTS

    _check = field_validator("announced")(_phrases)


class TalkOverAnswer(Strict):
    """Yes when ``party`` started at most ``max_talk_overs`` talk-overs."""

    max_talk_overs: int = Field(ge=0)
    party: PartyName = "agent"


class HoldAnswer(Strict):
    """Yes when no hold (``total``: all holds together) lasted over ``max_hold_s``."""

    max_hold_s: float = Field(ge=0)
    total: bool = False
    party: PartyName = "agent"


class RuleAnswer(Strict):
    """Yes when the live rule matched (``matched: false``: when it did not)."""

    rule: str = Field(min_length=1)
    matched: bool = True


class ToneEndAnswer(Strict):
    """Yes when ``party``'s last tone reading is one of the labels; na without readings."""

    tone_end: tuple[ToneLabel, ...] = Field(min_length=1)
    party: PartyName = "caller"


class IvrAnswer(Strict):
    """Yes when the IVR visited every node listed (and a key was pressed, with ``dtmf``);
    na when the call had no IVR."""

    ivr: tuple[str, ...] = ()
    """Node ids the call must have entered."""
    dtmf: bool = False


def _kind(value: Any) -> str | None:
    if not isinstance(value, dict):
        return None
    for key in ("said_before", "said", "respond", "max_dead_air_s", "max_talk_overs", "max_hold_s",
                "rule", "tone_end", "ivr"):
        if key in value:
            return key
    return None


AutoAnswer = Annotated[
    Annotated[SaidBeforeAnswer, Tag("said_before")]
    | Annotated[SaidAnswer, Tag("said")]
    | Annotated[RespondAnswer, Tag("respond")]
    | Annotated[DeadAirAnswer, Tag("max_dead_air_s")]
    | Annotated[TalkOverAnswer, Tag("max_talk_overs")]
    | Annotated[HoldAnswer, Tag("max_hold_s")]
    | Annotated[RuleAnswer, Tag("rule")]
    | Annotated[ToneEndAnswer, Tag("tone_end")]
    | Annotated[IvrAnswer, Tag("ivr")],
    Discriminator(_kind),
]


class Question(Strict):
    id: Id
    text: str = Field(min_length=1)
    weight: float = Field(gt=0)
    auto: AutoAnswer
    na_without_agent: bool = True
    """Not applicable when no agent was on the call (an IVR-only call)."""


class Section(Strict):
    id: Id
    title: str = Field(min_length=1)
    questions: tuple[Question, ...] = Field(min_length=1)


class Form(Strict):
    id: Id
    version: str = Field("1", min_length=1, max_length=32)
    title: str = Field(min_length=1)
    pass_score: float = Field(80.0, ge=0, le=100)
    sections: tuple[Section, ...] = Field(min_length=1)

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | float) else value

    @model_validator(mode="after")
    def _unique(self) -> Form:
        for what, ids in (("section", [s.id for s in self.sections]),
                          ("question", [q.id for s in self.sections for q in s.questions])):
            dup = sorted({i for i in ids if ids.count(i) > 1})
            if dup:
                raise ValueError(f"{what} id(s) {', '.join(dup)} used twice")
        return self

    def questions(self) -> list[tuple[Section, Question]]:
        return [(s, q) for s in self.sections for q in s.questions]


def form_path(name: str | Path) -> Path:
    """A form file, or the name of a shipped one (``standard`` → ``qa/forms/standard.yaml``)."""
    p = Path(name)
    if p.suffix.lower() in (".yaml", ".yml") or p.exists():
        return p
    return FORMS_DIR / f"{name}.yaml"


def load_form(name: str | Path) -> Form:
    """Read and validate a form; raises ``FormError`` naming file, path and problem."""
    path = form_path(name)
    try:
        return load_model(path, Form)
    except AssistFileError as exc:
        raise FormError(exc.source, [((p,) if p else (), m) for p, m in exc.problems]) from None


def parse_form(data: Any, source: Path | None = None) -> Form:
    try:
        return parse_model(data, Form, source=source)
    except AssistFileError as exc:
        raise FormError(exc.source, [((p,) if p else (), m) for p, m in exc.problems]) from None


def load_forms(names: tuple[str, ...] | list[str]) -> list[Form]:
    forms = [load_form(n) for n in names]
    ids = [f.id for f in forms]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise FormError(None, [((), f"form id(s) {', '.join(dup)} named twice in qa.forms")])
    return forms
