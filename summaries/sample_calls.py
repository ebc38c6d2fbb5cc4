"""Scripted calls as event lists, for tests, benchmarks and demos of the CRM side.

They stand where the live pipeline would be (the events it emits), so the summary, store,
API and webhook can be exercised without audio. Tests of the pipeline itself use real audio.
"""

from __future__ import annotations

from speech.events import (
    CallEnded,
    CallStarted,
    DeadAirEnded,
    DeadAirStarted,
    DtmfDigit,
    Event,
    FinalTranscript,
    IvrAction,
    IvrStep,
    SpeechEnded,
    TalkOver,
    ToneAlert,
    ToneUpdate,
    Word,
)
from speech.frames import Party

C, A = Party.CALLER, Party.AGENT


def utterance(call_id: str, party: Party, start: float, text: str, *, conf: float = 0.8) -> list[Event]:
    """A final transcript with evenly spaced words, and its SpeechEnded."""
    tokens = text.split()
    step = 0.35
    words = tuple(Word(w, start + i * step, start + (i + 1) * step - 0.05, conf) for i, w in enumerate(tokens))
    end = start + step * len(tokens)
    return [
        SpeechEnded(call_id=call_id, t=end + 0.3, party=party, start=start, duration=end - start),
        FinalTranscript(call_id=call_id, t=end + 0.3, party=party, text=text, words=words,
                        confidence=conf, start=start, end=end, engine="script"),
    ]


def billing_call(call_id: str = "call-billing", caller: str = "+15550100", started_at: str = "2026-03-02T10:00:00+00:00") -> list[Event]:
    """IVR (account number keyed in), a double charge, a refund, a promised email, a happy caller."""
    ev: list[Event] = [
        CallStarted(call_id=call_id, t=0.0, source="replay", caller=caller, callee="+15550999", started_at=started_at),
        IvrStep(call_id=call_id, t=0.5, node="main_menu", action=IvrAction.ENTER),
        DtmfDigit(call_id=call_id, t=3.0, digit="1", source="rfc4733"),
        IvrStep(call_id=call_id, t=3.1, node="main_menu", action=IvrAction.CHOICE, detail={"choice": "billing"}),
        IvrStep(call_id=call_id, t=3.2, node="account_number", action=IvrAction.ENTER),
    ]
    for i, d in enumerate("12345678"):
        ev.append(DtmfDigit(call_id=call_id, t=4.0 + 0.3 * i, digit=d, source="rfc4733"))
    ev += [
        IvrStep(call_id=call_id, t=6.8, node="account_number", action=IvrAction.COLLECT, detail={"digits": "12345678"}),
        IvrStep(call_id=call_id, t=7.0, node="billing_queue", action=IvrAction.ENTER),
        IvrStep(call_id=call_id, t=7.1, node="billing_queue", action=IvrAction.ROUTE, detail={"queue": "billing"}),
        ToneUpdate(call_id=call_id, t=12.0, party=C, label="tense", score=0.55, start=8.0, end=11.5),
    ]
    ev += utterance(call_id, C, 8.0, "hi I was charged twice on my bill this month")
    ev += utterance(call_id, A, 12.5, "sorry about that let me look at your billing statement")
    ev += utterance(call_id, C, 16.0, "the payment of $49.99 went through two times on march 3rd")
    ev += [DeadAirStarted(call_id=call_id, t=24.0, start=19.0, threshold=5.0),
           DeadAirEnded(call_id=call_id, t=25.0, start=19.0, end=25.0, duration=6.0)]
    ev += utterance(call_id, A, 25.0, "I have refunded the duplicate charge to your card")
    ev += utterance(call_id, A, 29.0, "I will email you a confirmation within 24 hours")
    ev += [TalkOver(call_id=call_id, t=30.0, started_by=C, interrupted=A, start=29.5, end=30.0, duration=0.5)]
    ev += utterance(call_id, C, 33.0, "great thank you that fixed it")
    ev += [ToneUpdate(call_id=call_id, t=36.0, party=C, label="calm", score=0.1, start=33.0, end=35.0),
           CallEnded(call_id=call_id, t=38.0, reason="hangup", duration=38.0)]
    return ev


def angry_tech_call(call_id: str = "call-tech", caller: str = "+15550111", started_at: str = "2026-03-03T15:30:00+00:00") -> list[Event]:
    """Internet down for the third time, no fix, escalation to a technician, an angry caller."""
    ev: list[Event] = [
        CallStarted(call_id=call_id, t=0.0, source="sip", caller=caller, callee="+15550999", started_at=started_at),
    ]
    ev += utterance(call_id, C, 1.0, "my internet is not working again this is the third time")
    ev += [ToneUpdate(call_id=call_id, t=5.0, party=C, label="tense", score=0.5, start=1.0, end=4.5)]
    ev += utterance(call_id, A, 6.0, "please restart your router and wait two minutes")
    ev += utterance(call_id, C, 10.0, "I did that it is still not working this is ridiculous")
    ev += [ToneUpdate(call_id=call_id, t=14.0, party=C, label="angry", score=0.82, start=10.0, end=13.5),
           ToneAlert(call_id=call_id, t=14.1, party=C, kind="angry", label="angry", score=0.82,
                     reasons=("lexical: ridiculous", "pitch up 30%"))]
    ev += utterance(call_id, A, 15.0, "I will send a technician tomorrow morning")
    ev += [CallEnded(call_id=call_id, t=20.0, reason="hangup", duration=20.0)]
    return ev


def silent_call(call_id: str = "call-silent", caller: str = "+15550122") -> list[Event]:
    """Nothing intelligible said: everything must stay unknown."""
    return [
        CallStarted(call_id=call_id, t=0.0, caller=caller, started_at="2026-03-04T09:00:00+00:00"),
        *utterance(call_id, C, 1.0, "uh the um", conf=0.3),
        DeadAirStarted(call_id=call_id, t=8.0, start=3.0, threshold=5.0),
        CallEnded(call_id=call_id, t=12.0, reason="hangup", duration=12.0),
    ]
