"""The live rules as a pipeline stage, and the webhook action.

The stage feeds :class:`~assist.rules.RulesEngine` the call's events and the clock of its frames,
and emits ``rule.matched``; the live feed carries those to MQTT (``alerts``) and the console. A
rule with a ``webhook`` is POSTed off the chain (a task on the loop; never delays frames): JSON
signed like the summary webhook (``X-Callcenter-Signature``) when a secret is set.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import httpx
from pydantic import BaseModel, ConfigDict, Field

from assist.rules import RulesEngine
from assist.rules_model import RulesFile, load_rules
from speech.events import Event, RuleMatched
from speech.frames import AudioFrame
from speech.stage import Stage
from summaries.webhook import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, sign

log = logging.getLogger(__name__)


class RulesSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    file: Path | None = None
    """The rules YAML; none: no live rules."""
    settle_s: float = Field(3.0, ge=0)
    """Conditions that wait for an absence (not said, unanswered, tone held) are decided this long
    after their time, so a live call's late finals still count (and replays agree with it)."""
    webhooks: bool = True
    """Call the rules' webhooks (``rules test`` turns this off)."""
    webhook_secret: str | None = None
    """HMAC-SHA256 key for ``X-Callcenter-Signature``; none: unsigned. A plain string like
    ``store.webhook_secret``: serve hands the settings to its workers as JSON."""
    webhook_timeout_s: float = Field(5.0, gt=0)


class RulesStage(Stage):
    """Evaluates one call's rules live; the frames only move its clock."""

    name = "rules"

    def __init__(self, settings: RulesSettings, rules: RulesFile | None = None) -> None:
        if rules is None:
            if settings.file is None:
                raise ValueError("rules.file is not set")
            rules = load_rules(settings.file)
        self.settings = settings
        self.rules = rules
        self.engine = RulesEngine(rules, settle_s=settings.settle_s)
        self._posts: set[asyncio.Task[None]] = set()

    def process_frame(self, frame: AudioFrame) -> list[Event]:
        return self._act(self.engine.advance(frame.end))

    def process_event(self, event: Event) -> list[Event]:
        return self._act(self.engine.on_event(event))

    def finish(self, t: float) -> list[Event]:
        return self._act(self.engine.finish(t))

    @property
    def pending(self) -> int:
        return len(self._posts)

    async def drain(self) -> None:
        if self._posts:
            await asyncio.gather(*self._posts, return_exceptions=True)

    async def aclose(self) -> None:
        for task in list(self._posts):
            task.cancel()
        await self.drain()

    def _act(self, events: list[Event]) -> list[Event]:
        if not self.settings.webhooks:
            return events
        hooks = {r.name: r.then.webhook for r in self.rules.rules if r.then.webhook}
        for event in events:
            if isinstance(event, RuleMatched) and event.rule in hooks:
                task = asyncio.get_running_loop().create_task(self._post(hooks[event.rule], event))
                self._posts.add(task)
                task.add_done_callback(self._posts.discard)
        return events

    async def _post(self, url: str, event: RuleMatched) -> None:
        call_id = event.call_id or self.ctx.call_id
        body = json.dumps(event.with_call_id(call_id).to_dict()).encode()
        # a rule fires once per call: receivers deduplicate retries on this key
        headers = {"Content-Type": "application/json", IDEMPOTENCY_HEADER: f"{call_id}:{event.rule}"}
        if self.settings.webhook_secret is not None:
            headers[SIGNATURE_HEADER] = sign(self.settings.webhook_secret, body)
        try:
            async with httpx.AsyncClient(timeout=self.settings.webhook_timeout_s) as client:
                response = await client.post(url, content=body, headers=headers)
            if response.status_code >= 300:
                log.warning("rule webhook for rule %s answered %s", event.rule, response.status_code)
        except httpx.HTTPError as exc:
            log.warning("rule webhook for rule %s failed: %s", event.rule, type(exc).__name__)
