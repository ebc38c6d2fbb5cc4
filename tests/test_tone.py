"""Tone stage on real espeak-ng speech, fed the way the pipeline feeds it.

The caller's audio is rendered per utterance, laid on one call track with pauses, and cut into
20 ms frames. The VAD's and ASR's events are scripted from the known speech bounds, arriving as
late as they do live: SpeechStarted 0.1 s after the onset, SpeechEnded 0.3 s after the end
(hangover), FinalTranscript 0.5 s after the end carrying the known text.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from callcenter.settings import ToneSettings
from speech.events import (
    Event,
    FinalTranscript,
    PlaybackEnded,
    PlaybackStarted,
    SpeechEnded,
    SpeechStarted,
    ToneAlert,
    ToneUpdate,
)
from speech.frames import FRAME_MS, PIPELINE_RATE, AudioFrame, Party
from speech.lexicon import LexicalScorer, find_phrases
from speech.tone import ToneStage
from speech.tone_tuning import ToneTuning
from tests.stage_harness import run_stages

GAP_S = 1.2
STEP = PIPELINE_RATE * FRAME_MS // 1000
CALM_VOICE = {"pitch": 50, "speed": 150, "amplitude": 100}
AGITATED_VOICE = {"pitch": 85, "speed": 210, "amplitude": 200}

CALM_LINES = [
    "Hello, I would like to check the balance of my account, please.",
    "Thank you. Could you also tell me when my next bill is due?",
    "That is very helpful, thank you so much for your time.",
    "Great, I appreciate it. Have a nice day.",
]
ESCALATING = [
    ("Hello, I am calling about my internet connection.", 50, 150, 100),
    ("It stopped working yesterday evening and I restarted the router.", 55, 155, 110),
    ("It is still not working, I already called about this twice.", 68, 175, 140),
    ("I am really frustrated, this is a complete waste of my time.", 78, 192, 170),
    ("This is the third time I call, it is unacceptable, I want to speak to a manager.", 85, 210, 200),
]
PROSODIC = ("pitch", "loudness", "speaking rate")
LEXICAL = ("escalation phrase", "negative words")


def _speech(path) -> np.ndarray:
    data, rate = sf.read(str(path), dtype="int16")
    assert rate == PIPELINE_RATE
    level = np.abs(data.astype(np.int32))
    loud = np.flatnonzero(level > 300)
    return data[loud[0] : loud[-1] + 1]


def feed(stage: ToneStage, lines: list[tuple[object, str | None]], *, playback: tuple[float, float] | None = None,
         agent: bool = False, final_after_s: float = 0.5) -> tuple[list[Event], list[tuple[float, float]]]:
    """Run one caller track through ``stage``; ``lines`` are (wav, final text or None).

    ``final_after_s``: when the final arrives after the speech ends (SpeechEnded comes at 0.3 s).
    """
    track = [np.zeros(int(0.5 * PIPELINE_RATE), np.int16)]
    bounds: list[tuple[float, float]] = []
    pos = len(track[0])
    for wav, _ in lines:
        speech = _speech(wav)
        bounds.append((pos / PIPELINE_RATE, (pos + len(speech)) / PIPELINE_RATE))
        track += [speech, np.zeros(int(GAP_S * PIPELINE_RATE), np.int16)]
        pos += len(speech) + int(GAP_S * PIPELINE_RATE)
    audio = np.concatenate(track)
    audio = np.pad(audio, (0, -len(audio) % STEP))
    party = Party.AGENT if agent else Party.CALLER

    script: list[tuple[float, Event]] = []
    for (start, end), (_, text) in zip(bounds, lines, strict=True):
        script.append((start + 0.1, SpeechStarted(t=start, party=party)))
        script.append((end + 0.3, SpeechEnded(t=end, start=start, duration=end - start, party=party)))
        if text is not None:
            at = end + final_after_s
            script.append((at, FinalTranscript(t=at, party=party, text=text, start=start, end=end)))
    if playback is not None:
        script.append((playback[0], PlaybackStarted(t=playback[0], party=Party.AGENT, name="menu")))
        script.append((playback[1], PlaybackEnded(t=playback[1], party=Party.AGENT, name="menu")))
    script.sort(key=lambda item: item[0])

    frames = [AudioFrame(audio[i : i + STEP].tobytes(), PIPELINE_RATE, i / PIPELINE_RATE, party)
              for i in range(0, len(audio), STEP)]
    injected = [event for _, event in script]
    events = run_stages([stage], frames, inject=script, end=len(audio) / PIPELINE_RATE)
    out = [e for e in events if e not in injected]  # what the stage itself produced
    return out, bounds


def updates(events: list[Event]) -> list[ToneUpdate]:
    return [e for e in events if isinstance(e, ToneUpdate)]


def alerts(events: list[Event], kind: str | None = None) -> list[ToneAlert]:
    return [e for e in events if isinstance(e, ToneAlert) and (kind is None or e.kind == kind)]


def test_calm_caller_stays_calm(tts):
    stage = ToneStage(ToneSettings())
    events, _ = feed(stage, [(tts(line, **CALM_VOICE), line) for line in CALM_LINES])
    ups = updates(events)
    assert len(ups) == len(CALM_LINES)
    assert all(u.label in ("calm", "neutral") for u in ups), [(u.label, u.score) for u in ups]
    assert alerts(events) == []
    assert [label for _, label, _ in stage.arc()] == [u.label for u in ups]
    assert stage.baseline_complete


def test_escalating_caller_raises_one_rising_alert_with_both_kinds_of_reason(tts):
    stage = ToneStage(ToneSettings())
    lines = [(tts(text, pitch=p, speed=s, amplitude=a), text) for text, p, s, a in ESCALATING]
    events, bounds = feed(stage, lines)
    ups = updates(events)
    labels = [u.label for u in ups]
    assert len(ups) == len(ESCALATING)
    assert labels[0] in ("calm", "neutral"), labels
    assert labels[-1] in ("tense", "angry"), labels
    assert ups[-1].score > ups[0].score + 0.3
    assert ups[-1].trend > 0
    assert [x for u in ups for x in (u.start, u.end)] == pytest.approx([x for b in bounds for x in b])
    rising = alerts(events, "rising_tension")
    assert len(rising) == 1, [(a.t, a.reasons) for a in rising]
    reasons = rising[0].reasons
    assert any(r.startswith(PROSODIC) for r in reasons), reasons
    assert any(r.startswith(LEXICAL) for r in reasons), reasons
    assert rising[0].label in ("tense", "angry")
    assert len(alerts(events, "angry")) <= 1
    # The final utterance's own signals moved the right way against the baseline.
    last = ups[-1].signals
    assert last["pitch_change"] > 0.2 and last["loudness_change_db"] > 3 and last["rate_change"] > 0.1


def _third_utterance(tts, text: str, voice: dict) -> ToneUpdate:
    stage = ToneStage(ToneSettings())
    lines = [(tts(t, **CALM_VOICE), t) for t in ("I am calling about my order from last week.",
                                                 "The order number is on the invoice I received.")]
    lines.append((tts(text, **voice), text))
    events, _ = feed(stage, lines)
    ups = updates(events)
    assert len(ups) == 3 and stage.baseline_complete
    return ups[-1]


NEUTRAL_WORDS = "I would like to know where the package is right now."
ANGRY_WORDS = "This is ridiculous, I want to cancel and file a complaint with your supervisor."


def test_angry_words_in_a_calm_voice_raise_the_lexical_side(tts):
    control = _third_utterance(tts, NEUTRAL_WORDS, CALM_VOICE)
    angry = _third_utterance(tts, ANGRY_WORDS, CALM_VOICE)
    assert angry.score > control.score + 0.15
    assert angry.signals["lexical"] > control.signals["lexical"] + 0.3
    assert angry.signals["escalation"] > 0.5
    # The voice itself did not change much: the prosody side stays near the baseline level.
    assert abs(angry.signals["prosody"] - control.signals["prosody"]) < 0.15


def test_agitated_voice_with_neutral_words_raises_the_prosody_side(tts):
    control = _third_utterance(tts, NEUTRAL_WORDS, CALM_VOICE)
    agitated = _third_utterance(tts, NEUTRAL_WORDS, AGITATED_VOICE)
    assert agitated.score > control.score + 0.1
    assert agitated.signals["prosody"] > control.signals["prosody"] + 0.2
    assert agitated.signals["lexical"] == pytest.approx(control.signals["lexical"])
    assert agitated.signals["pitch_change"] > 0.2
    assert agitated.signals["loudness_change_db"] > 3


def test_missing_and_empty_transcripts_still_get_prosody_updates(tts):
    stage = ToneStage(ToneSettings())
    a, b, c = (tts(t, **CALM_VOICE) for t in ("Good morning to you.", "I have a question about my plan.",
                                              "Is there a cheaper option available?"))
    # First: no final before the next SpeechEnded; second: empty final; third: no final before finish.
    events, bounds = feed(stage, [(a, None), (b, ""), (c, None)])
    ups = updates(events)
    assert [u.start for u in ups] == pytest.approx([b[0] for b in bounds])
    assert all("lexical" not in u.signals and "prosody" in u.signals for u in ups)
    # The first update was emitted when the second utterance ended (0.3 s after it), not before.
    first = next(u for u in ups if u.start == pytest.approx(bounds[0][0]))
    assert first.t == pytest.approx(bounds[1][1])
    assert len(stage.arc()) == 3


def test_late_transcript_revises_the_prosody_only_update(tts):
    stage = ToneStage(ToneSettings())
    wav = tts("Good morning to you.", **CALM_VOICE)
    events, bounds = feed(stage, [(wav, None)])
    (only,) = updates(events)
    assert "lexical" not in only.signals
    start, end = bounds[0]
    late = stage.process_event(FinalTranscript(t=end + 5, party=Party.CALLER, text="I want to speak to a manager",
                                               start=start, end=end))
    (revised,) = updates(late)
    assert revised.start == pytest.approx(start)
    assert revised.score > only.score
    assert len(stage.arc()) == 1 and stage.arc()[0][2] == pytest.approx(revised.score)


def test_audio_under_a_playback_is_ignored(tts):
    wav = tts("Yes, I want to talk to somebody about my bill.", **CALM_VOICE)
    heard, bounds = feed(ToneStage(ToneSettings()), [(wav, "")])
    assert len(updates(heard)) == 1
    ignored, _ = feed(ToneStage(ToneSettings()), [(wav, "")], playback=(0.2, bounds[0][1] + 1.0))
    assert updates(ignored) == []


def test_utterance_memory_is_bounded():
    """A caller who never pauses: only the newest ``max_utterance_s`` of audio is kept."""
    stage = ToneStage(ToneSettings(), tuning=ToneTuning(max_utterance_s=2.0))
    t = np.arange(6 * PIPELINE_RATE) / PIPELINE_RATE
    audio = (3000 * np.sin(2 * np.pi * 140 * t)).astype(np.int16)
    out = stage.process_event(SpeechStarted(t=0.0, party=Party.CALLER))
    for i in range(0, len(audio), STEP):
        out += stage.process_frame(AudioFrame(audio[i : i + STEP].tobytes(), PIPELINE_RATE, i / PIPELINE_RATE))
    out += stage.process_event(SpeechEnded(t=6.0, start=0.0, duration=6.0, party=Party.CALLER))
    out += stage.finish(6.5)
    (update,) = updates(out)
    assert 1.5 < update.signals["voiced_s"] <= 2.05
    assert update.signals["pitch_hz"] == pytest.approx(140, rel=0.05)


def test_agent_speech_is_not_scored(tts):
    wav = tts("This is unacceptable, I want a manager.", **AGITATED_VOICE)
    events, _ = feed(ToneStage(ToneSettings()), [(wav, "This is unacceptable, I want a manager.")], agent=True)
    assert events == []


def test_alerts_rearm_only_after_tension_falls_back():
    """Scripted transcripts only (no audio): the alert logic on its own."""
    stage = ToneStage(ToneSettings())
    texts = ["I have a question about my bill.", "Thank you, that is kind.",
             "This is ridiculous, it is still not working.", "Unacceptable, get me a manager, I will call a lawyer.",
             "This is the third time, I want to cancel, it is a waste of time.",
             "Thank you so much, that is very helpful.", "Great, thank you, wonderful.",
             "It is still not working, this is ridiculous.", "Unacceptable. Get me your supervisor now."]
    out: list[Event] = []
    for i, text in enumerate(texts):
        out += stage.process_event(FinalTranscript(t=i * 5.0 + 3, party=Party.CALLER, text=text,
                                                   start=i * 5.0, end=i * 5.0 + 2))
    labels = [u.label for u in updates(out)]
    assert len(labels) == len(texts)
    # Two separate escalations, two rising alerts: not one per tense utterance.
    assert len(alerts(out, "rising_tension")) == 2, labels
    assert [a.t for a in alerts(out, "rising_tension")] == [13.0, 38.0]


def test_tone_events_serialize():
    stage = ToneStage(ToneSettings())
    (update, *_) = stage.process_event(FinalTranscript(t=3.0, party=Party.CALLER, text="I want a manager",
                                                       start=0.5, end=2.5))
    data = update.to_dict()
    assert data["type"] == "tone.update" and data["party"] == "caller"
    assert Event.from_dict(data) == ToneUpdate(**{**update.__dict__, "score": round(update.score, 4),
                                                 "trend": round(update.trend, 4)})


@pytest.mark.parametrize(("text", "expected"), [
    ("I want to speak to your MANAGER", {"manager"}),
    ("i want to speak to your manger", {"manager"}),
    ("this is the third time i call", {"third time"}),
    ("what a waste of my time", {"waste of time"}),
    ("it still doesn't work", {"still not working"}),
    ("i'm going to cancell my contract", {"cancel"}),
    ("let me manage that, the management is fine", set()),
    ("i am hungry, can you count the payments", set()),
])
def test_escalation_phrases_tolerate_asr_errors(text, expected):
    assert {p.label for p in find_phrases(text)} == expected


def test_lexical_tension_orders_polite_plain_and_angry_words():
    scorer = LexicalScorer()
    polite = scorer.score("Thank you so much, that is very helpful.")
    plain = scorer.score("My account number is on the letter.")
    angry = scorer.score("This is the third time I call, it is unacceptable, I want to speak to a manager.")
    assert polite.tension < plain.tension < angry.tension
    assert angry.phrases == ("manager", "unacceptable", "third time")


def test_scorers_share_one_word_list_with_routine_words_neutral():
    """Every call's scorer reads the process's one VADER analyzer (a burst of calls no longer
    parses the 7,500-word lexicon twice per call), and it still leaves the routine words out."""
    first, second = LexicalScorer(), LexicalScorer()
    assert first._vader is second._vader
    assert "problem" not in first._vader.lexicon and "terrible" in first._vader.lexicon
    assert first.score("I have a problem with my internet.").sentiment == 0.0
    assert second.score("This is terrible.").sentiment < -0.2


def test_transcript_before_speech_ended_is_scored_at_speech_ended(tts):
    """A final can overtake the VAD's hangover: the update must not wait for the next utterance."""
    lines = [(tts(t, **CALM_VOICE), t) for t in CALM_LINES[:3]]
    events, bounds = feed(ToneStage(ToneSettings()), lines, final_after_s=0.1)
    ups = updates(events)
    assert len(ups) == 3
    for update, (start, end) in zip(ups, bounds, strict=True):
        assert update.start == pytest.approx(start)
        assert end <= update.t < end + 0.5
        assert "lexical" in update.signals


def test_transcript_cut_in_two_by_the_asr_is_scored_once_with_all_words(tts):
    wav = tts("I have been waiting on hold for a long time and I want to speak to a manager.", **CALM_VOICE)
    stage = ToneStage(ToneSettings())
    _, bounds = feed(ToneStage(ToneSettings()), [(wav, None)])
    start, end = bounds[0]
    mid = (start + end) / 2
    script = [(start + 0.1, SpeechStarted(t=start, party=Party.CALLER)),
              (mid + 0.1, FinalTranscript(t=mid + 0.1, party=Party.CALLER, text="I have been waiting on hold",
                                          start=start, end=mid)),
              (end + 0.3, SpeechEnded(t=end, start=start, duration=end - start, party=Party.CALLER)),
              (end + 0.5, FinalTranscript(t=end + 0.5, party=Party.CALLER, text="I want to speak to a manager",
                                          start=mid, end=end))]
    audio = np.concatenate([np.zeros(int(0.5 * PIPELINE_RATE), np.int16), _speech(wav),
                            np.zeros(PIPELINE_RATE, np.int16)])
    audio = np.pad(audio, (0, -len(audio) % STEP))
    out: list[Event] = []
    for i in range(0, len(audio), STEP):
        while script and script[0][0] <= i / PIPELINE_RATE:
            out += stage.process_event(script.pop(0)[1])
        out += stage.process_frame(AudioFrame(audio[i : i + STEP].tobytes(), PIPELINE_RATE, i / PIPELINE_RATE))
    out += stage.finish(len(audio) / PIPELINE_RATE)
    (update,) = updates(out)
    assert update.t == pytest.approx(end + 0.5)
    assert update.signals["escalation"] > 0.5  # "manager" came with the second half
    assert "prosody" in update.signals
