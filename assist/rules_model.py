"""The live rules file (the shape of Contact Lens rules, offline): conditions over a call's events
→ actions. Validated by pydantic; a broken file is one line naming file, path and problem.

```yaml
rules:
  - name: supervisor_requested
    when:                               # all must hold (each once, at some point of the call)
      - said: [supervisor, manager]     # a phrase said by a party, exact or fuzzy
        party: caller
        fuzzy: true
    then:
      categories: [escalation]          # tag the call
      alert: Caller asked for a supervisor
      notify: [agent, supervisor]
      webhook: https://crm.example/hooks/rules
```

Conditions (one key names the kind): ``said``, ``not_said`` (+ ``by_s``), ``tone`` (+ ``held_s``),
``dead_air_s``, ``talk_over_count``, ``unanswered_question_s``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from assist.files import Strict, load_model

PartyName = Literal["caller", "agent", "any"]
ToneLabel = Literal["calm", "neutral", "tense", "angry"]


def _phrases(value: tuple[str, ...]) -> tuple[str, ...]:
    if any(not p.strip() for p in value):
        raise ValueError("phrases must not be empty")
    return value


class Said(Strict):
    """A party said one of the phrases (in one final transcript)."""

    said: tuple[str, ...] = Field(min_length=1)
    party: PartyName = "any"
    fuzzy: bool = False
    threshold: float = Field(85.0, ge=50, le=100)
    """Fuzzy: least rapidfuzz ratio (0-100)."""

    _check = field_validator("said")(_phrases)

    def describe(self) -> str:
        return f"{self.party} said {' / '.join(self.said)}"


class NotSaid(Strict):
    """A party had not said any of the phrases by call time ``by_s`` (an utterance counts when it
    began before ``by_s``)."""

    not_said: tuple[str, ...] = Field(min_length=1)
    by_s: float = Field(gt=0)
    party: PartyName = "agent"
    fuzzy: bool = True
    threshold: float = Field(85.0, ge=50, le=100)

    _check = field_validator("not_said")(_phrases)

    def describe(self) -> str:
        return f"{self.party} did not say {' / '.join(self.not_said)} by {self.by_s:g} s"


class ToneHeld(Strict):
    """The party's tone label stayed within ``tone`` for ``held_s`` (from the first such reading
    until no other label was read)."""

    tone: tuple[ToneLabel, ...] = Field(min_length=1)
    held_s: float = Field(0.0, ge=0)
    party: Literal["caller", "agent"] = "caller"

    def describe(self) -> str:
        return f"{self.party} tone {' / '.join(self.tone)} for {self.held_s:g} s"


class DeadAir(Strict):
    """Dead air lasted at least ``dead_air_s``."""

    dead_air_s: float = Field(gt=0)

    def describe(self) -> str:
        return f"dead air >= {self.dead_air_s:g} s"


class TalkOverCount(Strict):
    """At least ``talk_over_count`` talk-overs (started by ``by``)."""

    talk_over_count: int = Field(ge=1)
    by: PartyName = "any"

    def describe(self) -> str:
        return f"{self.talk_over_count} talk-over(s) by {self.by}"


class UnansweredQuestion(Strict):
    """A caller question (ends with "?" or opens with a question word) that no agent speech
    followed within ``unanswered_question_s``."""

    unanswered_question_s: float = Field(gt=0)

    def describe(self) -> str:
        return f"caller question unanswered for {self.unanswered_question_s:g} s"


CONDITION_KINDS: dict[str, type[Strict]] = {
    "said": Said,
    "not_said": NotSaid,
    "tone": ToneHeld,
    "dead_air_s": DeadAir,
    "talk_over_count": TalkOverCount,
    "unanswered_question_s": UnansweredQuestion,
}


def _kind(value: Any) -> str | None:
    if isinstance(value, dict):
        found = [k for k in CONDITION_KINDS if k in value]
        return f"<{found[0]}>" if len(found) == 1 else None
    kind = type(value)
    return next((f"<{k}>" for k, cls in CONDITION_KINDS.items() if cls is kind), None)


Condition = Annotated[
    Annotated[Said, Tag("<said>")]
    | Annotated[NotSaid, Tag("<not_said>")]
    | Annotated[ToneHeld, Tag("<tone>")]
    | Annotated[DeadAir, Tag("<dead_air_s>")]
    | Annotated[TalkOverCount, Tag("<talk_over_count>")]
    | Annotated[UnansweredQuestion, Tag("<unanswered_question_s>")],
    Discriminator(_kind, custom_error_type="condition_kind",
                  custom_error_message=f"needs exactly one of {', '.join(CONDITION_KINDS)}"),
]


class Action(Strict):
    categories: tuple[str, ...] = ()
    """Tag the call (stored with it and in its summary)."""
    alert: str = ""
    """Alert text shown to whoever ``notify`` names (MQTT ``alerts`` topic, console)."""
    notify: tuple[Literal["agent", "supervisor"], ...] = ("agent",)
    webhook: str | None = None
    """POST the match as JSON here (signed like the summary webhook when a secret is set)."""

    @field_validator("webhook")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"must be an http(s) URL, not {value!r}")
        return value

    @model_validator(mode="after")
    def _does_something(self) -> Action:
        if not (self.categories or self.alert or self.webhook):
            raise ValueError("needs categories, alert or webhook")
        return self


class Rule(Strict):
    name: str = Field(min_length=1)
    when: tuple[Condition, ...] = Field(min_length=1)
    then: Action


class RulesFile(Strict):
    rules: tuple[Rule, ...] = ()

    @field_validator("rules")
    @classmethod
    def _unique(cls, value: tuple[Rule, ...]) -> tuple[Rule, ...]:
        seen: set[str] = set()
        for rule in value:
            if rule.name in seen:
                raise ValueError(f"rule name {rule.name!r} is used twice")
            seen.add(rule.name)
        return value


def load_rules(path: str | Path) -> RulesFile:
    """Read and validate a rules file; every problem is an ``AssistFileError``."""
    return load_model(path, RulesFile)
