"""After-call summary from an OpenAI-compatible chat-completions endpoint, with an offline fallback.

The model only writes the fields that need language understanding (reason, actions, resolution,
follow-ups, entities, key phrases, with the utterance numbers that support them); counts from the
detectors (tone, dead air, talk ratio, DTMF, IVR path, duration) always come from the events.
Anything wrong with the endpoint (down, slow, not JSON, wrong shape) gives the offline summary,
marked ``producer="offline:fallback"`` so a reader knows which one they are looking at.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Iterable, Sequence
from typing import Any

import httpx

from speech.events import Event, FinalTranscript
from speech.frames import Party
from summaries.summarizer import summarize
from summaries.summary import REASONS, RESOLUTIONS, UNKNOWN, CallSummary, Entity, Evidence, FollowUp

log = logging.getLogger(__name__)

FALLBACK_PRODUCER = "offline:fallback"
MAX_TRANSCRIPT_CHARS = 24_000
"""Transcript sent to the model is cut here (keeps requests inside small context windows)."""

SYSTEM_PROMPT = """You summarize contact-center phone calls for a CRM. The transcript comes from a
noisy speech recognizer: if something is not clearly said, answer "unknown" rather than guess.
Reply with ONE JSON object and nothing else, with these keys:
  reason: one of {reasons}
  reason_phrase: the caller's words that state the reason ("" if unknown)
  actions_taken: list of short strings, what the agent did
  resolution: one of {resolutions}
  next_steps: list of {{"text": str, "due": str}}: what the caller must do ("unknown" due if not said)
  follow_ups: list of {{"text": str, "due": str}}: what the agent promised, with the spoken due hint
  entities: list of {{"kind": "account_number"|"order_number"|"amount"|"date"|"ticket_number", "value": str}}
  key_phrases: list of up to 8 short phrases
  evidence: object mapping each key above to a list of utterance numbers [n] that support it
""".format(reasons=", ".join(REASONS), resolutions=", ".join(RESOLUTIONS))


class LlmError(RuntimeError):
    """The endpoint failed or answered something that is not a usable summary."""


class LlmSummarizer:
    """Summaries from an LLM endpoint; the offline summarizer whenever it fails."""

    def __init__(self, base_url: str, api_key: str | None, model: str, timeout: float = 30.0,
                 *, transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.model = model
        self.timeout = timeout
        self._transport = transport
        self.last_error: str | None = None
        """Why the last call fell back (exception class and short message), or None."""

    def summarize(self, events: Iterable[Event], *, call_id: str | None = None) -> CallSummary:
        evs = list(events)
        offline = summarize(evs, call_id=call_id)
        utts = _numbered_utterances(evs)
        try:
            with httpx.Client(timeout=self.timeout, transport=self._transport) as client:
                resp = client.post(self._url(), json=self._request(offline, utts), headers=self._headers())
            return self._merge(offline, utts, self._parse(resp))
        except (httpx.HTTPError, LlmError, ValueError, KeyError, TypeError) as exc:
            return self._fallback(offline, exc)

    async def asummarize(self, events: Iterable[Event], *, call_id: str | None = None) -> CallSummary:
        evs = list(events)
        offline = summarize(evs, call_id=call_id)
        utts = _numbered_utterances(evs)
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                resp = await client.post(self._url(), json=self._request(offline, utts), headers=self._headers())
            return self._merge(offline, utts, self._parse(resp))
        except (httpx.HTTPError, LlmError, ValueError, KeyError, TypeError) as exc:
            return self._fallback(offline, exc)

    # -- request / response -------------------------------------------------------------------

    def _url(self) -> str:
        return f"{self.base_url}/chat/completions"

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def _request(self, offline: CallSummary, utts: Sequence[Evidence]) -> dict[str, Any]:
        lines = [f"[{i}] {u.t_start:.1f}s {u.party}: {u.text}" for i, u in enumerate(utts)]
        transcript = "\n".join(lines)[:MAX_TRANSCRIPT_CHARS] or "(no speech recognized)"
        facts = {"ivr_path": list(offline.ivr_path), "tone_end": offline.tone_end,
                 "tone_alerts": len(offline.tone_alerts), "duration_s": offline.duration}
        return {
            "model": self.model,
            "temperature": 0,
            "response_format": {"type": "json_object"},
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": f"Call facts: {json.dumps(facts)}\nTranscript:\n{transcript}"},
            ],
        }

    @staticmethod
    def _parse(resp: httpx.Response) -> dict[str, Any]:
        if resp.status_code != 200:
            raise LlmError(f"HTTP {resp.status_code}")
        content = resp.json()["choices"][0]["message"]["content"]
        if not isinstance(content, str):
            raise LlmError("message content is not text")
        content = re.sub(r"^\s*```(?:json)?|```\s*$", "", content.strip())
        data = json.loads(content)
        if not isinstance(data, dict):
            raise LlmError("answer is not a JSON object")
        return data

    def _merge(self, offline: CallSummary, utts: Sequence[Evidence], data: dict[str, Any]) -> CallSummary:
        reason = data.get("reason", UNKNOWN)
        resolution = data.get("resolution", UNKNOWN)
        ev_idx = data.get("evidence") or {}
        if not isinstance(ev_idx, dict):
            raise LlmError("evidence is not an object")

        def evidence(key: str) -> tuple[Evidence, ...]:
            idx = ev_idx.get(key) or []
            return tuple(utts[i] for i in idx if isinstance(i, int) and 0 <= i < len(utts))

        def follow(key: str, owner: str) -> tuple[FollowUp, ...]:
            out = []
            for item in data.get(key) or []:
                if isinstance(item, str):
                    item = {"text": item}
                out.append(FollowUp(text=str(item["text"]), due=str(item.get("due") or UNKNOWN), owner=owner))
            return tuple(out)

        llm_fields = ("reason", "actions_taken", "resolution", "next_steps", "follow_ups", "entities", "key_phrases")
        merged_evidence = {k: v for k, v in offline.evidence.items() if k not in llm_fields}
        merged_evidence.update({k: evidence(k) for k in llm_fields if evidence(k)})
        entities = tuple(
            Entity(kind=str(e["kind"]), value=str(e["value"]), source="transcript")
            for e in data.get("entities") or [] if isinstance(e, dict)
        )
        # DTMF entities come from the IVR, not from the model.
        entities += tuple(e for e in offline.entities if e.source == "dtmf")
        self.last_error = None
        return dataclasses.replace(
            offline,
            producer=f"llm:{self.model}",
            reason=reason if reason in REASONS else UNKNOWN,
            reason_phrase=str(data.get("reason_phrase") or ""),
            actions_taken=tuple(str(a) for a in data.get("actions_taken") or []),
            resolution=resolution if resolution in RESOLUTIONS else UNKNOWN,
            next_steps=follow("next_steps", "caller"),
            follow_ups=follow("follow_ups", "agent"),
            entities=entities,
            key_phrases=tuple(str(k) for k in data.get("key_phrases") or [])[:8],
            evidence=merged_evidence,
        )

    def _fallback(self, offline: CallSummary, exc: Exception) -> CallSummary:
        self.last_error = f"{type(exc).__name__}: {str(exc)[:200]}"
        log.warning("LLM summary failed (%s); using the offline summarizer", type(exc).__name__)
        return dataclasses.replace(offline, producer=FALLBACK_PRODUCER)


def _numbered_utterances(evs: Sequence[Event]) -> list[Evidence]:
    out = [
        Evidence(e.start, e.end, (e.party or Party.CALLER).value, " ".join(e.text.split()))
        for e in evs
        if isinstance(e, FinalTranscript) and e.text.strip()
    ]
    return sorted(out, key=lambda u: u.t_start)
