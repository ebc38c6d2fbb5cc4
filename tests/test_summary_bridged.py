"""Summary of a call with an agent bridged to the caller: scripted event streams (issue 11)."""

from __future__ import annotations

import json

import pytest

from speech.events import (
    CallEnded,
    CallStarted,
    Event,
    HoldEnded,
    HoldStarted,
    IvrAction,
    IvrStep,
    PartyJoined,
    PartyLeft,
    PlaybackEnded,
    PlaybackStarted,
    QueueAction,
    QueueUpdate,
    TalkOver,
    ToneUpdate,
)
from speech.frames import Party
from summaries.report import format_call, format_summary_brief
from summaries.sample_calls import utterance
from summaries.summarizer import summarize
from summaries.summary import CallSummary, HoldStats, PartyTone, QueueStats, ResponseGaps
from summaries.summary_rules import SummaryRules

C, A = Party.CALLER, Party.AGENT
ID = "bridged"
WORD_S = 0.35
"""sample_calls.utterance spaces words 0.35 s apart: a turn of n words lasts 0.35 n s."""


def say(party: Party, start: float, text: str) -> list[Event]:
    return utterance(ID, party, start, text)


def bridged_call() -> list[Event]:
    """IVR, 12 s in the billing queue with music, agent a7 answers; a hold, a refund, two promises,
    one talk-over each way; the agent hangs up at 59 s, the call ends at 60 s.

    Speech while a7 was connected (15-59 s), from the turns below:
    caller 2.45 + 1.05 + 2.45 = 5.95 s; agent 2.8 + 3.5 + 2.8 + 3.5 + 3.5 + 1.4 = 17.5 s.
    Before a7 joined the caller said 5 words in the IVR (1.75 s), which must not count."""
    ev: list[Event] = [
        CallStarted(call_id=ID, t=0.0, caller="+15550100"),
        IvrStep(call_id=ID, t=0.5, node="main_menu", action=IvrAction.ENTER),
        *say(C, 1.0, "I have a billing question"),
        IvrStep(call_id=ID, t=3.0, node="billing_queue", action=IvrAction.ROUTE, detail={"queue": "billing"}),
        QueueUpdate(call_id=ID, t=3.0, queue="billing", action=QueueAction.ENTERED, position=2),
        PlaybackStarted(call_id=ID, t=3.0, kind="hold", name="billing"),
        QueueUpdate(call_id=ID, t=15.0, queue="billing", action=QueueAction.CONNECTED, wait_s=12.0, agent_id="a7"),
        PlaybackEnded(call_id=ID, t=15.0, kind="hold", name="billing"),
        PartyJoined(call_id=ID, t=15.0, party=A, agent_id="a7", queue="billing", wait_s=12.0, ring_s=4.0),
        ToneUpdate(call_id=ID, t=18.0, party=A, label="calm", score=0.1),
        *say(A, 15.5, "thank you for waiting how can I help"),  # ends 18.3
        *say(C, 18.5, "I was charged twice for my order"),  # ends 20.95; agent answers 1.05 s later
        ToneUpdate(call_id=ID, t=21.0, party=C, label="neutral", score=0.3),
        *say(A, 22.0, "I'll put you on hold while I verify your account"),  # ends 25.5
        HoldStarted(call_id=ID, t=26.0, party=A, by=A),
        HoldEnded(call_id=ID, t=31.0, party=A, by=A, start=26.0, duration=5.0),
        *say(A, 31.5, "I've refunded the second charge to your card"),  # ends 34.3
        *say(C, 33.8, "oh great thanks"),  # ends 34.85, over the agent's end
        TalkOver(call_id=ID, t=34.3, started_by=C, interrupted=A, start=33.8, end=34.3, duration=0.5),
        ToneUpdate(call_id=ID, t=35.0, party=C, label="tense", score=0.55),
        *say(A, 35.5, "I will send you an email with the receipt today"),  # 0.65 s after the caller
        *say(A, 39.5, "I'll call you back tomorrow if it has not arrived"),
        ToneUpdate(call_id=ID, t=43.0, party=A, label="neutral", score=0.25),
        *say(C, 44.0, "I will check my email thank you"),  # ends 46.45
        TalkOver(call_id=ID, t=46.45, started_by=A, interrupted=C, start=46.1, end=46.45, duration=0.35),
        ToneUpdate(call_id=ID, t=46.5, party=C, label="calm", score=0.1),
        *say(A, 57.0, "sorry about that goodbye"),  # 10.55 s after the caller: over the threshold
        ToneUpdate(call_id=ID, t=58.5, party=A, label="calm", score=0.05),
        PartyLeft(call_id=ID, t=59.0, party=A, agent_id="a7", reason="hangup"),
        CallEnded(call_id=ID, t=60.0, reason="hangup", duration=60.0),
    ]
    return ev


def test_talk_ratio_counts_only_while_the_agent_was_connected():
    s = summarize(bridged_call())
    caller, agent = 5.95, 17.5
    assert s.talk_ratio == {"caller": round(caller / (caller + agent), 3), "agent": round(agent / (caller + agent), 3)}
    # The whole call's speech would give the caller a larger share (the IVR words).
    assert s.talk_ratio["caller"] < round((caller + 1.75) / (caller + 1.75 + agent), 3)


def test_without_an_agent_joining_the_whole_call_counts():
    ev = [e for e in bridged_call() if not isinstance(e, PartyJoined | PartyLeft)]
    s = summarize(ev)
    caller, agent = 5.95 + 1.75, 17.5
    assert s.talk_ratio["caller"] == round(caller / (caller + agent), 3)


def test_talk_over_counts_who_started_it():
    s = summarize(bridged_call())
    assert s.talk_over_count == 2
    assert s.talk_over_by == {"caller": 1, "agent": 1}
    only_caller = [e for e in bridged_call() if not (isinstance(e, TalkOver) and e.started_by == A)]
    assert summarize(only_caller).talk_over_by == {"caller": 1, "agent": 0}


def test_hold_count_and_seconds():
    assert summarize(bridged_call()).hold == HoldStats(count=1, total_s=5.0)


def test_a_hold_open_at_hang_up_counts_until_the_end():
    ev = [*bridged_call()[:-1], HoldStarted(call_id=ID, t=59.5, party=A, by=A),
          CallEnded(call_id=ID, t=62.0, reason="hangup", duration=62.0)]
    assert summarize(ev).hold == HoldStats(count=2, total_s=7.5)


def test_agent_response_gap_mean_and_max():
    """Two agent turns answer a caller turn (1.05 s and 0.65 s); the agent's turn 10.55 s after
    the caller is over ``max_response_gap_s`` and turns that follow the agent's own are not answers."""
    s = summarize(bridged_call())
    assert s.agent_response_gap_s == ResponseGaps(count=2, mean_s=0.85, max_s=1.05)
    wider = summarize(bridged_call(), rules=SummaryRules(max_response_gap_s=11.0))
    assert wider.agent_response_gap_s == ResponseGaps(count=3, mean_s=round((1.05 + 0.65 + 10.55) / 3, 2), max_s=10.55)


def test_a_hold_between_the_caller_and_the_agent_is_no_response_gap():
    ev = [CallStarted(call_id=ID), PartyJoined(call_id=ID, t=0.0, party=A, agent_id="a7"),
          *say(C, 1.0, "can you check my order"),  # ends 2.75
          HoldStarted(call_id=ID, t=3.0, party=A, by=A), HoldEnded(call_id=ID, t=6.0, party=A, by=A, start=3.0, duration=3.0),
          *say(A, 6.5, "thanks for holding"), CallEnded(call_id=ID, t=9.0, duration=9.0)]
    assert summarize(ev).agent_response_gap_s == ResponseGaps()
    no_hold = [e for e in ev if not isinstance(e, HoldStarted | HoldEnded)]
    assert summarize(no_hold).agent_response_gap_s == ResponseGaps(count=1, mean_s=3.75, max_s=3.75)


def test_tone_per_party():
    s = summarize(bridged_call())
    assert s.tone_by_party == {
        "caller": PartyTone(start="neutral", end="calm", worst="tense"),
        "agent": PartyTone(start="calm", end="calm", worst="neutral"),
    }


def test_queue_wait_and_agent():
    s = summarize(bridged_call())
    assert s.queue == QueueStats(name="billing", queues=("billing",), wait_s=12.0, agent_ids=("a7",), transfers=0)


def test_a_transfer_to_another_queue_is_counted_once():
    """The ACD reports one transfer twice (QueueUpdate transferred and PartyLeft transfer); the
    caller's words between the agents are outside the connected time."""
    ev: list[Event] = [
        CallStarted(call_id=ID),
        QueueUpdate(call_id=ID, t=1.0, queue="billing", action=QueueAction.ENTERED, position=1),
        QueueUpdate(call_id=ID, t=5.0, queue="billing", action=QueueAction.CONNECTED, wait_s=4.0, agent_id="a7"),
        PartyJoined(call_id=ID, t=5.0, party=A, agent_id="a7", queue="billing", wait_s=4.0),
        *say(A, 5.5, "this is billing"),  # 1.05 s
        QueueUpdate(call_id=ID, t=8.0, queue="tech", action=QueueAction.TRANSFERRED, agent_id="a7", target="tech"),
        PartyLeft(call_id=ID, t=8.0, party=A, agent_id="a7", reason="transfer"),
        *say(C, 9.0, "hello is anybody there"),  # alone in the queue: not counted
        QueueUpdate(call_id=ID, t=14.0, queue="tech", action=QueueAction.CONNECTED, wait_s=6.0, agent_id="a9"),
        PartyJoined(call_id=ID, t=14.0, party=A, agent_id="a9", queue="tech", wait_s=6.0),
        *say(C, 14.5, "my router is broken"),  # 1.4 s
        *say(A, 16.5, "let me check"),  # 1.05 s
        CallEnded(call_id=ID, t=20.0, duration=20.0),
    ]
    s = summarize(ev)
    assert s.queue == QueueStats(name="billing", queues=("billing", "tech"), wait_s=10.0, agent_ids=("a7", "a9"), transfers=1)
    assert s.talk_ratio == {"caller": round(1.4 / 3.5, 3), "agent": round(2.1 / 3.5, 3)}


def test_an_abandoned_wait_counts():
    ev = [CallStarted(call_id=ID),
          QueueUpdate(call_id=ID, t=1.0, queue="sales", action=QueueAction.ENTERED, position=3),
          QueueUpdate(call_id=ID, t=31.0, queue="sales", action=QueueAction.ABANDONED, wait_s=30.0),
          CallEnded(call_id=ID, t=31.0, duration=31.0)]
    assert summarize(ev).queue == QueueStats(name="sales", queues=("sales",), wait_s=30.0)


def test_what_the_agent_did_and_promised_with_times():
    s = summarize(bridged_call())
    assert s.actions_taken == ("refunded the second charge to your card",)
    (ev,) = s.evidence["actions_taken"]
    assert (ev.t_start, ev.party) == (31.5, "agent") and "refunded" in ev.text
    assert [(f.text, f.due, f.owner, f.t) for f in s.follow_ups] == [
        ("send you an email with the receipt today", "today", "agent", 35.5),
        ("call you back tomorrow if it has not arrived", "tomorrow", "agent", 39.5),
    ]
    # "I'll put you on hold" is about the call, and the caller's "I will check my email" is not the agent's.
    assert [e.t_start for e in s.evidence["follow_ups"]] == [35.5, 39.5]


@pytest.mark.parametrize(
    ("said", "action"),
    [
        ("I've just sent you the new password", "sent you the new password"),
        ("I have already cancelled the order", "cancelled the order"),
        ("we've gone ahead and credited your account", "credited your account"),
        ("I have given you a ten dollar credit", "given you a ten dollar credit"),
    ],
)
def test_agent_phrasings_of_actions(said, action):
    ev = [CallStarted(call_id=ID), *say(A, 1.0, said), CallEnded(call_id=ID, t=9.0, duration=9.0)]
    assert summarize(ev).actions_taken == (action,)


@pytest.mark.parametrize(
    ("said", "promise"),
    [
        ("I'm going to escalate this to my supervisor", "escalate this to my supervisor"),
        ("I will call you back tomorrow", "call you back tomorrow"),
        ("I'll need your account number first", None),
        ("I'm going to transfer you to billing", None),
    ],
)
def test_first_person_promises_and_in_call_steps(said, promise):
    ev = [CallStarted(call_id=ID), *say(A, 1.0, said), CallEnded(call_id=ID, t=9.0, duration=9.0)]
    assert [f.text for f in summarize(ev).follow_ups] == ([promise] if promise else [])


def test_each_action_has_its_own_evidence():
    ev = [CallStarted(call_id=ID), *say(A, 1.0, "I've refunded the fee and I have sent a receipt"),
          *say(A, 6.0, "I have updated your address"), CallEnded(call_id=ID, t=12.0, duration=12.0)]
    s = summarize(ev)
    assert len(s.actions_taken) == 3
    assert [e.t_start for e in s.evidence["actions_taken"]] == [1.0, 1.0, 6.0]


def test_new_fields_roundtrip_through_json():
    s = summarize(bridged_call())
    back = CallSummary.from_dict(json.loads(json.dumps(s.to_dict())))
    assert back == s
    assert isinstance(back.queue.agent_ids, tuple) and isinstance(back.tone_by_party["caller"], PartyTone)


def test_report_shows_the_conversation():
    s = summarize(bridged_call())
    detail = format_call({"call_id": ID, "summary": s.to_dict(), "transcript": []})
    assert "talk-over 2 (caller 1, agent 1)" in detail
    assert "Queue:      billing, waited 12s;  agent(s) a7;  transfers 0" in detail
    assert "Hold:       1 time(s), 5.0s" in detail
    assert "Agent gap:  0.8s mean, 1.1s max over 2 answer(s)" in detail
    assert "Tone caller: neutral -> calm (worst tense)" in detail
    assert "Tone agent:  calm -> calm (worst neutral)" in detail
    brief = format_summary_brief(s)
    assert "  Hold:       1 time(s), 5.0s" in brief and "Queue:" in brief
