"""Render the recorded test calls (and their expectation files) from espeak-ng speech.

Usage: ``python audio_fixtures/render.py [--out DIR] [--only NAME ...] [--expect-only]``
Each call is a script of segments on a call timeline: utterances spoken by espeak-ng (resampled
by sox to 16 kHz and trimmed to the voiced part, so the true gaps are exactly the ones written
here), pauses, a low noise floor (never digital zero, as a phone line is never silent) and DTMF
key presses. Because the script knows where every gap and overlap lies, the timing parts of each
``<name>.expect.json`` (dead air, talk-over, duration) are computed from the render itself; the
keyword groups are hand-picked words that the recognizers actually hear on these voices in both
the 16 kHz and the 8 kHz G.711 versions (see README.md and check_keywords.py), and each party's
words are bounded by a measured word error rate against the script (``transcript``).

Needs only numpy, soundfile, espeak-ng and sox; deterministic per espeak-ng/sox version (seeded noise, sox -R, no dither).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

RATE = 16000
"""Sample rate of the 16 kHz renders (the pipeline rate)."""
NOISE_FLOOR_DB = -60.0
"""Level of the white noise under everything (dBFS RMS): quiet, but not digital zero."""
TRIM_DB = -40.0
"""Peak level (dBFS) below which espeak's leading and trailing output counts as silence."""
DTMF_TONE_S = DTMF_GAP_S = 0.1
DTMF_LEVEL_DB = -10.0
"""Level of each of the two DTMF sines (dBFS peak)."""
DEAD_AIR_TOLERANCE_S = TALK_OVER_TOLERANCE_S = DURATION_MARGIN_S = 0.5
DEAD_AIR_MIN_GAP_S = 3.0
"""Gaps at least this long go into ``dead_air``: under any sensible dead-air threshold, over any
turn-taking pause in these scripts (the longest is 1.5 s)."""
SEED = 4512

DTMF_FREQS: dict[str, tuple[int, int]] = {
    key: (low, high) for keys, low in zip(("123A", "456B", "789C", "*0#D"), (697, 770, 852, 941), strict=True)
    for key, high in zip(keys, (1209, 1336, 1477, 1633), strict=True)
}

AGENT_VOICE = "en-us"
CALLER_VOICE = "en-us"
CALLER_VOICE_F = "en-gb+f3"


@dataclass(frozen=True)
class Say:
    """One utterance: espeak-ng voice, speed (words/min), pitch (0-99) and amplitude (0-200)."""

    text: str
    voice: str = CALLER_VOICE
    speed: int = 135
    pitch: int = 50
    amplitude: int = 100


@dataclass(frozen=True)
class Pause:
    seconds: float
    """Noise floor only, for this long."""


@dataclass(frozen=True)
class Keys:
    digits: str
    """In-band DTMF key presses (100 ms tone / 100 ms gap each)."""


@dataclass(frozen=True)
class Hold:
    seconds: float
    """The agent holds: noise floor only on both channels, for this long. Listed in
    ``rendered.hold`` and never in ``dead_air`` (a live call's HoldStarted pauses dead air)."""


@dataclass(frozen=True)
class Overlap:
    seconds: float
    """Start the next utterance this long before the previous one (on the other channel) ends."""


Segment = Say | Pause | Keys | Hold | Overlap


@dataclass
class Call:
    """A test call: a script per channel plus the hand-picked parts of its expectation."""

    name: str
    script: list[tuple[str, Segment]]
    """(channel, segment) in time order; channel is ``caller`` or ``agent``."""
    stereo: bool = False
    keywords: list[list[str]] = field(default_factory=list)
    keywords_party: str | None = None
    tone: dict | None = None
    max_wer: dict[str, float] = field(default_factory=dict)
    """Party → WER bound of its finals against the script (measured on both versions + margin)."""
    suffix: str = ".wav"
    """``.flac`` halves a long stereo call losslessly (the QA calls); libsndfile reads both."""
    g711: str = "ulaw"
    """``ulaw``, ``alaw``, or ``""`` for no G.711 copy (the QA calls: benchmarks make their own)."""
    rate: int = RATE
    """Sample rate of ``<name>.wav``: 8000 keeps long stereo calls under 1 MB (what a bridged
    SIP call's G.711 audio holds anyway)."""
    sides: bool = False
    """Also write each channel as a mono WAV (``sides/<name>.<party>.wav``, the call's whole
    timeline), for SIP tests where a test caller and a test agent each play one side. They live
    in a subfolder so ``replay --check audio_fixtures/`` does not take the agent side for a caller."""


SIDES_DIR = "sides"
"""Where the per-party mono copies of two-party calls go (see ``Call.sides``)."""


@dataclass
class Rendered:
    """A call's tracks at 16 kHz plus what the render knows about its timeline."""

    tracks: dict[str, np.ndarray]
    speech: list[tuple[str, float, float]] = field(default_factory=list)
    """(channel, start, end) of every utterance, seconds."""
    dtmf: str = ""
    keys: list[tuple[str, float, float]] = field(default_factory=list)
    """(channel, start, end) of every run of key presses, seconds."""
    talk_over: list[dict] = field(default_factory=list)
    holds: list[tuple[str, float, float]] = field(default_factory=list)
    """(channel that held, start, end) of every hold, seconds."""

    @property
    def duration(self) -> float:
        return max(len(t) for t in self.tracks.values()) / RATE


CALLS: list[Call] = [
    Call(
        name="calm_billing",
        script=[
            ("caller", Pause(0.6)),
            ("caller", Say("Hello, I am calling about a problem with my bill.", speed=140)),
            ("caller", Pause(1.2)),
            ("caller", Say("I was charged twice this month for the same service.", speed=130)),
            ("caller", Pause(1.5)),
            ("caller", Say("Please refund the money to my account.", speed=125)),
            ("caller", Pause(0.9)),
            ("caller", Say("I would like a refund, please.", speed=140)),
            ("caller", Pause(1.0)),
            ("caller", Say("Thank you, I really appreciate your help.", speed=135)),
            ("caller", Pause(0.8)),
        ],
        keywords=[["problem", "problems"], ["money"], ["appreciate"]],  # not "refund": whisper hears "refer"
        tone={"final_label_in": ["calm", "neutral"], "max_label": "neutral", "alert": False},
        max_wer={"caller": 0.45},
    ),
    Call(
        # Rising tension: each utterance louder (-a), higher (-p) and faster (-s), pauses shorter.
        name="angry_repeat",
        script=[
            ("caller", Pause(0.5)),
            ("caller", Say("Hello, I am calling again about my internet connection.", speed=130, pitch=45, amplitude=60)),
            ("caller", Pause(1.2)),
            ("caller", Say("This is the third time I am calling about the same problem.", speed=135, pitch=52, amplitude=85)),
            ("caller", Pause(0.9)),
            ("caller", Say("This is completely unacceptable!", speed=145, pitch=60, amplitude=110)),
            ("caller", Pause(0.7)),
            ("caller", Say("I want to speak to a manager!", speed=150, pitch=66, amplitude=135)),
            ("caller", Pause(0.5)),
            ("caller", Say("I will cancel everything today!", speed=160, pitch=72, amplitude=155)),
            ("caller", Pause(0.5)),
            ("caller", Say("This is ridiculous, I am really angry!", speed=165, pitch=78, amplitude=175)),
            ("caller", Pause(0.6)),
        ],
        # Not expected (README.md): through G.711 pocketsphinx misses calling/third/manager/cancel, whisper ridiculous.
        keywords=[["problem", "problems"], ["completely", "unacceptable"], ["angry"]],
        tone={"final_label_in": ["tense", "angry"], "alert": True},
        max_wer={"caller": 0.2},
    ),
    Call(
        name="dead_air",
        script=[
            ("caller", Pause(0.5)),
            ("caller", Say("Hi, I need to change the address on my account.", speed=130)),
            ("caller", Pause(0.8)),
            ("caller", Say("Let me find the letter, one moment please.", speed=130)),
            ("caller", Pause(7.0)),
            ("caller", Say("Okay, I am back. The problem started today.", speed=130)),
            ("caller", Pause(0.8)),
        ],
        keywords=[["okay"], ["problem", "problems"]],
        tone={"alert": False},
        g711="alaw",
        max_wer={"caller": 0.3},
    ),
    Call(
        name="dtmf_menu",
        script=[
            ("caller", Pause(0.5)),
            ("caller", Say("Hello, can you hear me?", speed=130)),
            ("caller", Pause(0.6)),
            ("caller", Say("I have a problem with my internet.", speed=130)),
            ("caller", Pause(0.6)),
            ("caller", Keys("1234#")),
            ("caller", Pause(0.8)),
            ("caller", Say("My account number is", speed=130)),
            ("caller", Pause(0.5)),
            ("caller", Keys("4512")),
            ("caller", Pause(0.6)),
            ("caller", Say("Thank you, I really appreciate it.", speed=135)),
            ("caller", Pause(0.6)),
        ],
        keywords=[["problem", "problems"], ["internet"], ["appreciate"]],
        tone={"alert": False},
        max_wer={"caller": 0.45},
    ),
    Call(
        name="talk_over",
        stereo=True,
        script=[
            ("agent", Pause(0.5)),
            ("agent", Say("Thank you for calling, how can I help you today?", voice=AGENT_VOICE, speed=140)),
            ("caller", Pause(0.5)),
            ("caller", Say("Hi, my phone stopped working yesterday.", voice=CALLER_VOICE_F, speed=130)),
            ("agent", Pause(0.5)),
            ("agent", Say("I am sorry to hear that. Let me check the service in your area, it may take a minute.", voice=AGENT_VOICE, speed=140)),
            ("caller", Overlap(1.0)),
            ("caller", Say("I already restarted the phone twice.", voice=CALLER_VOICE_F, speed=130)),
            ("agent", Pause(0.5)),
            ("agent", Say("Okay, I see a problem in your area. We will fix it today.", voice=AGENT_VOICE, speed=140)),
            ("caller", Pause(0.5)),
            ("caller", Say("Great, thank you very much.", voice=CALLER_VOICE_F, speed=130)),
            ("caller", Pause(0.7)),
        ],
        keywords=[["problem", "problems"], ["area"]],  # "already": whisper at 8 kHz misses it
        tone={"alert": False},
        max_wer={"caller": 0.35, "agent": 0.3},
    ),
    Call(
        # A bridged call: the agent verifies, holds 3 s (silence on both channels), refunds; the
        # caller starts one short talk-over; the agent promises an email.
        name="bridged_refund",
        stereo=True,
        rate=8000,
        sides=True,
        script=[
            ("agent", Pause(0.4)),
            ("agent", Say("Thank you for calling, how can I help you today?", voice=AGENT_VOICE, speed=130)),
            ("caller", Pause(0.5)),
            ("caller", Say("Hi, I was charged twice for my last order.", voice=CALLER_VOICE_F, speed=130)),
            ("agent", Pause(0.5)),
            ("agent", Say("I am sorry to hear that. Let me verify your order, please hold.", voice=AGENT_VOICE, speed=130)),
            ("agent", Hold(3.0)),
            ("agent", Say("Thanks for waiting. I have refunded the extra charge to your card.", voice=AGENT_VOICE, speed=130)),
            ("caller", Overlap(0.6)),
            ("caller", Say("Oh, great, thank you.", voice=CALLER_VOICE_F, speed=130)),
            ("agent", Pause(0.5)),
            ("agent", Say("I will also send you an email today.", voice=AGENT_VOICE, speed=130)),
            ("caller", Pause(0.5)),
            ("caller", Say("Perfect, thanks a lot.", voice=CALLER_VOICE_F, speed=130)),
            ("caller", Pause(0.6)),
        ],
        keywords=[["charged", "charge"], ["refunded", "refund"], ["email", "e-mail"]],
        tone={"alert": False},
        # the caller's "Oh, great, thank you" is said over the agent: tiny.en's int8 kernels hear
        # it as 6 or 7 errors in 17 words depending on the CPU (0.35 / 0.41)
        max_wer={"caller": 0.45, "agent": 0.25},
    ),
    Call(
        # A bridged call that gets tense: the caller louder, higher and faster each turn; the
        # agent stays level, acknowledges and escalates.
        name="bridged_escalation",
        stereo=True,
        rate=8000,
        sides=True,
        script=[
            ("agent", Pause(0.4)),
            ("agent", Say("Thank you for waiting, how can I help you?", voice=AGENT_VOICE, speed=130)),
            ("caller", Pause(0.5)),
            ("caller", Say("Hello, my internet has been down for two days.", speed=130, pitch=48, amplitude=70)),
            ("agent", Pause(0.5)),
            ("agent", Say("I am sorry to hear that. Did you restart the router?", voice=AGENT_VOICE, speed=140)),
            ("caller", Pause(0.5)),
            ("caller", Say("Yes, of course I did. This is the third time I am calling!", speed=145, pitch=62, amplitude=120)),
            ("agent", Pause(0.5)),
            ("agent", Say("I understand, and I am sorry for the trouble.", voice=AGENT_VOICE, speed=140)),
            ("caller", Pause(0.4)),
            ("caller", Say("This is completely unacceptable!", speed=155, pitch=72, amplitude=160)),
            ("agent", Pause(0.5)),
            ("agent", Say("I will ask a technician to call you tomorrow morning.", voice=AGENT_VOICE, speed=130)),
            ("caller", Pause(0.4)),
            ("caller", Say("Okay, but I am really angry!", speed=160, pitch=76, amplitude=175)),
            ("caller", Pause(0.6)),
        ],
        keywords=[["internet"], ["completely"], ["technician"], ["tomorrow"]],
        tone={"final_label_in": ["tense", "angry"], "alert": True},
        max_wer={"caller": 0.5, "agent": 0.15},
    ),
]


QA_DIR = "qa_calls"
"""Subfolder of the QA-form fixtures (``QA_CALLS``): out of ``replay --check audio_fixtures/``."""


def _a(text: str, voice: str, speed: int = 145, pitch: int = 50, amplitude: int = 100) -> tuple[str, Segment]:
    return ("agent", Say(text, voice=voice, speed=speed, pitch=pitch, amplitude=amplitude))


def _c(text: str, voice: str, speed: int = 140, pitch: int = 50, amplitude: int = 100) -> tuple[str, Segment]:
    return ("caller", Say(text, voice=voice, speed=speed, pitch=pitch, amplitude=amplitude))


def _turn(party: str, seconds: float = 0.5) -> tuple[str, Segment]:
    """A turn-taking gap: ``party`` starts this long after the other one stopped."""
    return (party, Pause(seconds))


QA_CALLS: list[Call] = [
    # Bridged calls with known good and bad agent behaviour, hand-labelled per question of the
    # standard QA form in qa_calls/labels.yaml (what a reviewer answers from the script). The
    # wording is deliberately not the form's example phrases.
    Call(
        # Does everything right: greets, checks the postcode first, acknowledges the caller's
        # frustration, recaps and offers more help.
        name="qa_model_order", stereo=True, rate=8000, g711="", suffix=".flac",
        script=[
            _turn("agent", 0.4),
            _a("Good morning, thanks for ringing Northwind, my name is Sam. What can I do for you?", "en-gb+m3"),
            _turn("caller"),
            _c("Hi, my order still has not arrived, and it was due last week.", "en-us+f2"),
            _turn("agent"),
            _a("Sure. Before I open the order, could you confirm the postcode on the account?", "en-gb+m3"),
            _turn("caller"),
            _c("Yes, it is L S one, four A P.", "en-us+f2"),
            _turn("agent"),
            _a("Thanks, that matches. The parcel is stuck at our depot.", "en-gb+m3"),
            _turn("caller", 0.4),
            _c("Stuck again? That is really frustrating, I needed it for Saturday!",
               "en-us+f2", speed=160, pitch=70, amplitude=170),
            _turn("agent"),
            _a("I completely understand how annoying that is, I am sorry.", "en-gb+m3"),
            _turn("agent", 0.4),
            _a("I have booked a priority delivery for tomorrow, and refunded the delivery charge.", "en-gb+m3"),
            _turn("caller"),
            _c("Okay, that helps.", "en-us+f2"),
            _turn("agent"),
            _a("So just to recap: the parcel comes tomorrow, and the delivery charge goes back on your card.",
               "en-gb+m3"),
            _turn("agent", 0.4),
            _a("Anything more I can do for you today?", "en-gb+m3"),
            _turn("caller"),
            _c("No, that is everything. Bye.", "en-us+f2"),
            _turn("caller", 0.6),
        ],
    ),
    Call(
        # No greeting at all; a general question (no account details), calm; recap and offer.
        name="qa_no_greeting", stereo=True, rate=8000, g711="", suffix=".flac",
        script=[
            _turn("agent", 0.4),
            _a("Support desk. Go ahead.", "en-us", ),
            _turn("caller"),
            _c("Hello, I wanted to ask what time your shop on the high street opens on Sundays.", "en-gb+f3"),
            _turn("agent"),
            _a("The high street store opens at ten on Sundays, and closes at four.", "en-us", ),
            _turn("caller"),
            _c("And do you sell replacement chargers for the older tablet model?", "en-gb+f3"),
            _turn("agent"),
            _a("Yes, we stock the older charger. It is on the shelf near the tills.", "en-us", ),
            _turn("caller"),
            _c("Lovely, thank you.", "en-gb+f3"),
            _turn("agent"),
            _a("So to sum up, the shop opens at ten on Sunday, and the charger is in stock there.", "en-us", ),
            _turn("agent", 0.4),
            _a("Is there anything else you need?", "en-us", ),
            _turn("caller"),
            _c("No, that is all, thanks.", "en-gb+f3"),
            _turn("caller", 0.6),
        ],
    ),
    Call(
        # Account details (payment, balance) read out with no verification at all; calm; no recap.
        name="qa_no_verification", stereo=True, rate=8000, g711="", suffix=".flac",
        script=[
            _turn("agent", 0.4),
            _a("Good afternoon, you are through to billing, this is Priya. How can I help you?", "en-gb"),
            _turn("caller"),
            _c("Hi, I just want to check whether my last payment went through.", "en-us+m3"),
            _turn("agent"),
            _a("Sure. Your last payment of forty two pounds was taken on the third, and your balance is now zero.",
               "en-gb"),
            _turn("caller"),
            _c("Great. And when is the next bill due?", "en-us+m3"),
            _turn("agent"),
            _a("Your next bill is forty two pounds, and it is due on the third of next month.", "en-gb"),
            _turn("caller"),
            _c("Perfect, that is all I needed.", "en-us+m3"),
            _turn("agent"),
            _a("Was there anything else I could help you with?", "en-gb"),
            _turn("caller"),
            _c("No, thanks. Bye.", "en-us+m3"),
            _turn("caller", 0.6),
        ],
    ),
    Call(
        # The caller gets angry twice; the agent asked for the order number first but never
        # acknowledges the anger; recaps; no offer of further help.
        name="qa_angry_ignored", stereo=True, rate=8000, g711="", suffix=".flac",
        script=[
            _turn("agent", 0.4),
            _a("Hello, accounts desk, Mark speaking. How can I help?", "en-us"),
            _turn("caller"),
            _c("I was charged for a subscription I cancelled last month.", "en-us", pitch=48, amplitude=80),
            _turn("agent"),
            _a("What is the order number on the subscription?", "en-us"),
            _turn("caller"),
            _c("It is four five one two nine.", "en-us", pitch=52, amplitude=90),
            _turn("agent"),
            _a("Right. The cancellation was never processed, so the charge stands for now.", "en-us"),
            _turn("caller", 0.4),
            _c("That is ridiculous! I cancelled it weeks ago, and now I am paying for your mistake!",
               "en-us", speed=160, pitch=70, amplitude=165),
            _turn("agent"),
            _a("I will reverse the charge and close the subscription now.", "en-us"),
            _turn("caller", 0.4),
            _c("This is the worst service I have ever had!", "en-us", speed=165, pitch=76, amplitude=180),
            _turn("agent"),
            _a("To summarize, the subscription is closed, and the charge will be reversed within five days. Goodbye.",
               "en-us"),
            _turn("agent", 0.6),
        ],
    ),
    Call(
        # A long silence on the agent's turn (12 s, nothing announced) after the caller answered.
        name="qa_silent_agent", stereo=True, rate=8000, g711="", suffix=".flac",
        script=[
            _turn("agent", 0.4),
            _a("Thanks for calling, you are speaking with Tom. How can I help you today?", "en-gb+m3"),
            _turn("caller"),
            _c("Hi Tom, I would like to change the delivery address on my order.", "en-gb+f3"),
            _turn("agent"),
            _a("No problem. Can I take your date of birth to verify the account, please?", "en-gb+m3"),
            _turn("caller"),
            _c("It is the fourth of May, nineteen eighty.", "en-gb+f3"),
            _turn("agent", 12.0),
            _a("Right, sorry. I have changed the address on the order to the new one.", "en-gb+m3"),
            _turn("caller"),
            _c("Thank you.", "en-gb+f3"),
            _turn("agent"),
            _a("Just to recap, the order now goes to your new address, and nothing else changes.", "en-gb+m3"),
            _turn("agent", 0.4),
            _a("Can I help with anything else?", "en-gb+m3"),
            _turn("caller"),
            _c("No, that is all.", "en-gb+f3"),
            _turn("caller", 0.6),
        ],
    ),
    Call(
        # An announced hold of 14 s (not dead air); the caller's frustration acknowledged.
        name="qa_announced_hold", stereo=True, rate=8000, g711="", suffix=".flac",
        script=[
            _turn("agent", 0.4),
            _a("Good afternoon, thank you for calling, this is Anna. How may I help?", "en-us+f2"),
            _turn("caller"),
            _c("Hi, my card payment keeps getting declined on your website.", "en-us+m3", amplitude=90),
            _turn("agent"),
            _a("Could you confirm the account number and postcode for me?", "en-us+f2"),
            _turn("caller"),
            _c("It is seven seven three one, postcode B one, one A A.", "en-us+m3",
               amplitude=90),
            _turn("agent"),
            _a("Thanks. I need to check with the payments team, so I will put you on hold for a moment.",
               "en-us+f2"),
            ("agent", Hold(12.0)),
            _turn("agent", 0.4),
            _a("Thanks for holding. Your card was blocked by our fraud check.", "en-us+f2"),
            _turn("caller", 0.4),
            _c("Blocked? That is so annoying! I have been trying for an hour!", "en-us+m3", speed=160, pitch=68,
               amplitude=170),
            _turn("agent"),
            _a("I can see why that would be irritating, I apologize.", "en-us+f2"),
            _turn("agent", 0.4),
            _a("So, to go over it: I have removed the block, and your payment will go through today.", "en-us+f2"),
            _turn("agent", 0.4),
            _a("Is there anything else you need today?", "en-us+f2"),
            _turn("caller"),
            _c("No. Bye.", "en-us+m3"),
            _turn("caller", 0.6),
        ],
    ),
    Call(
        # The agent keeps cutting the caller off (three talk-overs); no recap, no offer.
        name="qa_interrupter", stereo=True, rate=8000, g711="", suffix=".flac",
        script=[
            _turn("agent", 0.4),
            _a("Hi there, thanks for calling TechLine, how can I help you today?", "en-us", speed=160),
            _turn("caller"),
            _c("Hello, my wifi keeps dropping every evening, usually around eight o'clock, and then it takes ages",
               "en-gb+f3"),
            ("agent", Overlap(1.5)),
            _a("Have you restarted the router?", "en-us", speed=160),
            _turn("caller"),
            _c("Yes, I restarted it twice yesterday, and I also moved it closer to the living room", "en-gb+f3"),
            ("agent", Overlap(1.5)),
            _a("Okay, then it is the channel. You need to change the channel.", "en-us", speed=160),
            _turn("caller"),
            _c("Right, but the thing is, it only seems to happen when my son starts his games", "en-gb+f3"),
            ("agent", Overlap(1.5)),
            _a("Just change the channel in the settings page and it will be fine.", "en-us", speed=160),
            _turn("caller"),
            _c("Okay then.", "en-gb+f3"),
            _turn("caller", 0.6),
        ],
    ),
    Call(
        # Verified, frustration acknowledged, but no recap and no offer of further help.
        name="qa_no_closing", stereo=True, rate=8000, g711="", suffix=".flac",
        script=[
            _turn("agent", 0.4),
            _a("Good morning, thanks for ringing, Lucy speaking. How can I help?", "en-gb"),
            _turn("caller"),
            _c("My broadband bill has gone up again, and nobody told me.", "en-us", pitch=50, amplitude=90),
            _turn("agent"),
            _a("Sorry about that. Can you give me the account number, so I can check it?", "en-gb"),
            _turn("caller"),
            _c("It is three three eight one.", "en-us", pitch=52, amplitude=95),
            _turn("agent"),
            _a("Thanks. The discount you had ended last month, so the price went back to normal.", "en-gb"),
            _turn("caller", 0.4),
            _c("Nobody warned me! This is really annoying, I am fed up with this!", "en-us", speed=160, pitch=72,
               amplitude=170),
            _turn("agent"),
            _a("I get it, I would be annoyed too. I have added a new discount of ten pounds a month.", "en-gb"),
            _turn("caller"),
            _c("Fine.", "en-us", pitch=60, amplitude=120),
            _turn("agent"),
            _a("Okay, bye now.", "en-gb"),
            _turn("agent", 0.6),
        ],
    ),
    Call(
        # Calm, verified first, one short agent talk-over (the form allows one), recap and offer.
        name="qa_calm_verified", stereo=True, rate=8000, g711="", suffix=".flac",
        script=[
            _turn("agent", 0.4),
            _a("Hello, and thank you for calling Harbor Bank. This is Jordan. What can I help you with?", "en-us+m3"),
            _turn("caller"),
            _c("Hello, I would like to order a new debit card, mine is worn out.", "en-gb+f3"),
            _turn("agent"),
            _a("Of course. First I need to confirm who I am speaking to. What is your security answer?",
               "en-us+m3"),
            _turn("caller"),
            _c("It is Rover, the name of my first dog.", "en-gb+f3"),
            _turn("agent"),
            _a("Thank you, that is correct. I can see the card ending in four four one two.", "en-us+m3"),
            _turn("caller"),
            _c("That is the one. Can the new card go to my home address?", "en-gb+f3"),
            ("agent", Overlap(0.6)),
            _a("Yes, it will go to the home address we have on file.", "en-us+m3"),
            _turn("agent", 0.4),
            _a("So, to summarize: a new debit card is on its way to your home, within five working days.", "en-us+m3"),
            _turn("caller"),
            _c("Wonderful.", "en-gb+f3"),
            _turn("agent"),
            _a("Is there anything more I can do for you?", "en-us+m3"),
            _turn("caller"),
            _c("No, thank you. Goodbye.", "en-gb+f3"),
            _turn("caller", 0.6),
        ],
    ),
    Call(
        # No agent ever joins: the caller waits in the queue, calm, and gives up (every answer na).
        name="qa_abandoned", rate=8000, g711="", suffix=".flac",
        script=[
            _turn("caller", 0.6),
            _c("Hello? I am calling about my order.", "en-us"),
            _turn("caller", 6.0),
            _c("I have been waiting for a few minutes now.", "en-us"),
            _turn("caller", 6.0),
            _c("Is anybody there?", "en-us"),
            _turn("caller", 5.0),
            _c("Okay, I will try again later.", "en-us"),
            _turn("caller", 0.8),
        ],
    ),
]


def speak(say: Say, workdir: Path) -> np.ndarray:
    """espeak-ng → sox (16 kHz mono float) → trimmed to the voiced part."""
    raw = workdir / "say.wav"
    out = workdir / "say16.wav"
    subprocess.run(
        ["espeak-ng", "-v", say.voice, "-s", str(say.speed), "-p", str(say.pitch),
         "-a", str(say.amplitude), "-w", str(raw), say.text],
        check=True, capture_output=True,
    )
    subprocess.run(
        ["sox", "-R", "-D", str(raw), "-r", str(RATE), "-c", "1", "-e", "floating-point", "-b", "32", str(out)],
        check=True, capture_output=True,
    )
    x, _ = sf.read(str(out), dtype="float32")
    return trim(x)


def trim(x: np.ndarray) -> np.ndarray:
    """Cut leading and trailing samples quieter than TRIM_DB (whole-array, no loops)."""
    loud = np.flatnonzero(np.abs(x) > 10 ** (TRIM_DB / 20))
    if loud.size == 0:
        return x[:0]
    return x[loud[0] : loud[-1] + 1]


def dtmf(digits: str) -> np.ndarray:
    """Key presses as two summed sines at DTMF_LEVEL_DB each, tone then gap per key."""
    n_tone = round(DTMF_TONE_S * RATE)
    n_gap = round(DTMF_GAP_S * RATE)
    t = np.arange(n_tone) / RATE
    amp = 10 ** (DTMF_LEVEL_DB / 20)
    parts = []
    for i, d in enumerate(digits):
        lo, hi = DTMF_FREQS[d]
        parts.append(amp * (np.sin(2 * np.pi * lo * t) + np.sin(2 * np.pi * hi * t)))
        if i < len(digits) - 1:
            parts.append(np.zeros(n_gap))
    return np.concatenate(parts).astype(np.float32)


def render_call(call: Call, workdir: Path) -> Rendered:
    """Lay the script out on a per-channel timeline; each channel has its own cursor."""
    cursors = {"caller": 0.0, "agent": 0.0}
    pieces: list[tuple[str, float, np.ndarray]] = []
    out = Rendered(tracks={})
    last_end = {"caller": 0.0, "agent": 0.0}
    for channel, seg in call.script:
        other = "agent" if channel == "caller" else "caller"
        if isinstance(seg, Pause):
            # A pause on one channel starts after whatever the other party said last (turn-taking).
            cursors[channel] = max(cursors[channel], last_end[other]) + seg.seconds
        elif isinstance(seg, Hold):
            start = max(cursors[channel], last_end[other])
            cursors[channel] = start + seg.seconds
            out.holds.append((channel, round(start, 3), round(cursors[channel], 3)))
        elif isinstance(seg, Overlap):
            cursors[channel] = last_end[other] - seg.seconds
            out.talk_over.append({"started_by": channel, "start": round(cursors[channel], 2),
                                  "tolerance": TALK_OVER_TOLERANCE_S})
        elif isinstance(seg, Say):
            audio = speak(seg, workdir)
            start = cursors[channel]
            pieces.append((channel, start, audio))
            end = start + len(audio) / RATE
            out.speech.append((channel, round(start, 3), round(end, 3)))
            cursors[channel] = last_end[channel] = end
        elif isinstance(seg, Keys):
            audio = dtmf(seg.digits)
            pieces.append((channel, cursors[channel], audio))
            out.dtmf += seg.digits
            end = cursors[channel] + len(audio) / RATE
            out.keys.append((channel, round(cursors[channel], 3), round(end, 3)))
            cursors[channel] = last_end[channel] = end
    total = round(max(cursors.values()) * RATE)
    channels = ("agent", "caller") if call.stereo else ("caller",)
    rng = np.random.default_rng(SEED)
    noise_rms = 10 ** (NOISE_FLOOR_DB / 20)
    for ch in channels:
        track = (rng.standard_normal(total) * noise_rms).astype(np.float32)
        for pch, start, audio in pieces:
            if pch == ch:
                i = round(start * RATE)
                track[i : i + len(audio)] += audio[: total - i]
        out.tracks[ch] = np.clip(track, -1.0, 32767 / 32768)
    return out


def dead_air_intervals(sounds: list[tuple[str, float, float]], min_gap: float) -> list[dict]:
    """Gaps of at least ``min_gap`` seconds between any party's sound (speech or key presses)."""
    spans = sorted((s, e) for _, s, e in sounds)
    out: list[dict] = []
    end = spans[0][1] if spans else 0.0
    for s, e in spans[1:]:
        if s - end >= min_gap:
            out.append({"start": round(end, 2), "end": round(s, 2)})
        end = max(end, e)
    return out


def expectation(call: Call, r: Rendered) -> dict:
    """The expectation file for a rendered call (timing from the render, words from CALLS)."""
    exp: dict = {"schema": 1}
    if call.keywords:
        exp["keywords"] = call.keywords
        if call.keywords_party:
            exp["keywords_party"] = call.keywords_party
    exp["dead_air"] = dead_air_intervals(r.speech + r.keys + r.holds, min_gap=DEAD_AIR_MIN_GAP_S)
    exp["dead_air_tolerance"] = DEAD_AIR_TOLERANCE_S
    if call.tone:
        exp["tone"] = call.tone
    exp["dtmf"] = r.dtmf
    exp["talk_over"] = r.talk_over
    exp["min_duration"] = round(r.duration - DURATION_MARGIN_S, 1)
    exp["max_duration"] = round(r.duration + DURATION_MARGIN_S, 1)
    if call.max_wer:
        exp["transcript"] = [
            {"party": party, "reference": reference(call, party), "max_wer": bound}
            for party, bound in call.max_wer.items()
        ]
    exp["rendered"] = {
        "duration": round(r.duration, 3),
        "speech": [{"party": ch, "start": s, "end": e} for ch, s, e in r.speech],
        "dtmf": [{"party": ch, "start": s, "end": e} for ch, s, e in r.keys],
    }
    if r.holds:
        exp["rendered"]["hold"] = [{"by": ch, "start": s, "end": e} for ch, s, e in r.holds]
    return exp


def reference(call: Call, party: str) -> str:
    """Everything ``party`` says in the script, in order: the transcript check's reference."""
    return " ".join(seg.text for ch, seg in call.script if ch == party and isinstance(seg, Say))


def write_expectation(call: Call, r: Rendered, out_dir: Path) -> Path:
    (exp := out_dir / f"{call.name}.expect.json").write_text(json.dumps(expectation(call, r), indent=2) + "\n")
    return exp


def write_call(call: Call, r: Rendered, out_dir: Path, workdir: Path) -> list[Path]:
    """PCM WAV at the call's rate, its 8 kHz G.711 copy (sox), the mono sides if asked, and the
    expectation JSON."""
    data = np.stack([r.tracks[c] for c in ("agent", "caller")], axis=1) if call.stereo else r.tracks["caller"]
    wav = write_pcm(data, out_dir / f"{call.name}{call.suffix}", call.rate, workdir)
    law = call.g711
    if not law:
        return [wav, *write_sides(call, r, out_dir, workdir), write_expectation(call, r, out_dir)]
    g711 = out_dir / f"{call.name}_8k_{law}.wav"
    encoding = "u-law" if law == "ulaw" else "a-law"
    wide = wav if call.rate == RATE else write_pcm(data, workdir / f"{call.name}.wav", RATE, workdir)
    subprocess.run(
        ["sox", "-R", "-D", str(wide), "-r", "8000", "-e", encoding, "-b", "8", str(g711)],
        check=True, capture_output=True,
    )
    return [wav, g711, *write_sides(call, r, out_dir, workdir), write_expectation(call, r, out_dir)]


def write_sides(call: Call, r: Rendered, out_dir: Path, workdir: Path) -> list[Path]:
    """Each channel alone as mono PCM at the call's rate, same length and timeline as the call."""
    if not call.sides:
        return []
    (out_dir / SIDES_DIR).mkdir(exist_ok=True)
    return [write_pcm(track, out_dir / SIDES_DIR / f"{call.name}.{party}.wav", call.rate, workdir)
            for party, track in r.tracks.items()]


def write_pcm(data: np.ndarray, dst: Path, rate: int, workdir: Path) -> Path:
    """16-bit PCM WAV of 16 kHz float samples at ``rate`` (sox resamples: no dither, fixed seed)."""
    if rate == RATE:
        sf.write(str(dst), data, RATE, subtype="PCM_16")
        return dst
    wide = workdir / "wide.wav"
    sf.write(str(wide), data, RATE, subtype="PCM_16")
    subprocess.run(
        ["sox", "-R", "-D", str(wide), "-r", str(rate), "-e", "signed-integer", "-b", "16", str(dst)],
        check=True, capture_output=True,
    )
    return dst


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    ap.add_argument("--only", nargs="*", help="render only these call names")
    ap.add_argument("--expect-only", action="store_true", help="rewrite the .expect.json files, not the audio")
    args = ap.parse_args(argv)
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            print(f"{tool} not found (apt-get install espeak-ng sox)", file=sys.stderr)
            return 2
    names = {c.name for c in (*CALLS, *QA_CALLS)}
    unknown = set(args.only or ()) - names
    if unknown:
        print(f"unknown call(s): {', '.join(sorted(unknown))}; known: {', '.join(sorted(names))}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for call, out in [*((c, args.out) for c in CALLS), *((c, args.out / QA_DIR) for c in QA_CALLS)]:
            if args.only and call.name not in args.only:
                continue
            r = render_call(call, Path(tmp))
            out.mkdir(exist_ok=True)
            for p in [write_expectation(call, r, out)] if args.expect_only else write_call(call, r, out, Path(tmp)):
                print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
