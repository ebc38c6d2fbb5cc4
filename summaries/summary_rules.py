"""The rules of the offline summarizer: thresholds and the patterns that find cues in transcripts.

Separate from ``summaries.summarizer`` (which applies them) so the wording lists can grow without
the logic. Patterns accept both recognizers' spellings: words and no punctuation (pocketsphinx:
"twenty five dollars", "march fifth") and numerals, capitals and punctuation (Whisper: "$25",
"March 5th", "account number, it's 4512-7789.").
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class SummaryRules:
    """Thresholds of the rule-based summarizer (named, so they can become settings)."""

    min_reason_score: float = 1.0
    """Weighted cue hits a reason needs before it is named."""
    reason_margin: float = 0.5
    """How far the best reason must lead the runner-up; a tie is ``unknown``."""
    caller_weight: float = 1.0
    agent_weight: float = 0.5
    """Agents paraphrase the reason ("so you want to cancel"), but less reliably than callers say it."""
    early_utterances: int = 4
    early_bonus: float = 0.5
    """Callers state the reason early: cue hits in their first utterances count extra."""
    max_phrase_chars: int = 120
    max_response_gap_s: float = 10.0
    """An agent turn starting later than this after the caller stopped is not an answer to it
    (the agent was busy, or the caller's turn was before a transfer): no response gap."""
    max_key_phrases: int = 8
    min_key_word_count: int = 2


REASON_CUES: dict[str, tuple[str, ...]] = {
    "cancellation": (
        r"\bcancel\w*", r"\bclose (?:my|the) account", r"\bterminat\w+", r"\bunsubscribe",
        r"\bend (?:my|the) (?:subscription|contract|service)", r"\bstop (?:my|the) service",
        r"\bswitch(?:ing)? (?:to )?(?:another|a different) provider",
    ),
    "billing": (
        r"\bbill(?:s|ed|ing)?\b", r"\bcharg\w+", r"\binvoice\w*", r"\bpayment\w*", r"\brefund\w*",
        r"\bovercharg\w+", r"\bfees?\b", r"\bstatement\b", r"\bpaid\b", r"\bdouble charged",
    ),
    "technical_support": (
        r"\bnot working", r"\b(?:doesn't|does not|won't|will not|isn't|is not) work", r"\bbroken\b",
        r"\berror\w*", r"\binternet\b", r"\bconnection\b", r"\bwi-?fi\b", r"\brouter\b",
        r"\bmodem\b", r"\boutage\b", r"\bkeeps? (?:dropping|crashing|disconnecting)",
        r"\bcrash\w*", r"\bslow\b", r"\bno (?:signal|service|internet)", r"\binstall\w*",
    ),
    "account": (
        r"\bpassword\b", r"\blog ?in\b", r"\bsign ?in\b", r"\busername\b", r"\blocked out",
        r"\bupdate (?:my|the) (?:address|email|details|phone|name)", r"\bchange (?:my|the) (?:address|email|details|phone|name)",
        r"\baccount (?:details|information|settings)", r"\baccess (?:to )?my account",
    ),
    "complaint": (
        r"\bcomplain\w*", r"\bunacceptable\b", r"\bterrible\b", r"\bworst\b", r"\bridiculous\b",
        r"\b(?:manager|supervisor)\b", r"\bfrustrat\w+", r"\bthird time\b", r"\bnobody (?:helps|listens)",
        r"\bawful\b", r"\bdisgust\w+",
    ),
    "sales": (
        r"\bupgrade\w*", r"\bnew (?:plan|phone|contract)", r"\bbuy\b", r"\bpurchas\w+",
        r"\bpric(?:e|es|ing)\b", r"\bquote\b", r"\bsign up\b",
    ),
}

RESOLVED_CUES = (
    r"\bthat (?:fixed|solved|worked|works|helps|helped|did it)", r"\b(?:it's|it is) working (?:now|again)",
    r"\bworks? (?:now|again)\b", r"\bproblem (?:is )?solved", r"\bperfect\b", r"\bthanks? (?:you )?for (?:your|the) help",
    r"\bthat's all i needed", r"\ball set\b", r"\bresolved\b", r"\bgreat,? thank",
    r"\b(?:has|have) been (?:cancelled|canceled|refunded|credited|reset|updated|fixed|processed)",
)
UNRESOLVED_CUES = (
    r"\bstill (?:not|doesn't|does not|isn't|broken|no)\b", r"\bnot (?:working|resolved|fixed)\b",
    r"\b(?:doesn't|didn't|does not|did not) help", r"\bwaste of (?:my )?time", r"\bunresolved\b",
    r"\b(?:speak|talk) (?:to|with) (?:a |your )?(?:manager|supervisor)", r"\bno luck\b",
    r"\bcan't help\b", r"\bunable to (?:help|fix|resolve)",
)
ESCALATION_CUES = (
    r"\bescalat\w+", r"\btechnician\b", r"\bget back to you", r"\blook into (?:it|this)",
    r"\bopen(?:ed)? a (?:ticket|case)", r"\bfollow up\b",
)

ACTION_PATTERN = re.compile(
    # What the agent did, first person: "I've refunded", "I have just sent", "we've gone ahead and
    # cancelled", "I just reset"; whisper writes "I've", pocketsphinx "i have".
    r"\b(?:i(?:'ve| have)|we(?:'ve| have)|i just|i went ahead and)"
    r"(?:\s+(?:just|already|also|now|gone ahead and|went ahead and))?\s+"
    r"((?:\w+ed|sent|reset|issued|made|set up|put|done|given|taken|paid|written)\b"
    r"(?:(?!,? and (?:i|we)\b)[^.?!])*)",  # "... and I have sent ...": the next action starts
    re.I,
)
PASSIVE_ACTION = re.compile(
    r"\b((?:your|the) [\w ]{1,40}? (?:has|have) been (?:\w+ed|sent|reset|issued|made)\b[^.?!]*)", re.I
)
PROMISE_PATTERN = re.compile(
    # What the agent will do after the call, first person: "I will call you back tomorrow", "I'll
    # send you an email", "I'm going to escalate this"; or what the caller will get.
    r"\b(?:i will|i'll|we will|we'll|i am going to|i'm going to|we are going to|we're going to|someone will"
    r"|a technician will|you will receive|you'll receive|you'll get|you will get)\s+"
    r"([^.?!]*)",
    re.I,
)
IN_CALL_STEP = re.compile(
    r"^(?:also\s+)?(?:need|have to|just|be right back|be with you|put you on hold|place you on hold|transfer you"
    r"|connect you|pull up|take a look|have a look|verify)\b",
    re.I,
)
"""Promise-shaped words that are about the call itself ("I'll need your account number", "I'll
put you on hold", "I'm going to transfer you"): no follow-up after it."""
CALLER_STEP_PATTERN = re.compile(
    r"\b(?:you (?:will )?need to|you should|you'll need to|please|make sure (?:you|to))\s+"
    r"((?:restart|reboot|unplug|check|reply|call|send|log|sign|update|confirm|try|keep|wait|visit|go)\b[^.?!]*)",
    re.I,
)
_NUM_WORD = r"(?:one|two|three|four|five|six|seven|eight|nine|ten|twelve|fifteen|twenty|thirty|forty|forty-eight|seventy-two|\d+)"
DUE_PATTERN = re.compile(
    r"\b(tomorrow(?: morning| afternoon| evening)?|today|tonight|this (?:afternoon|evening|week)"
    rf"|within (?:the next )?{_NUM_WORD} (?:business )?(?:hours?|days?|weeks?)"
    rf"|in (?:the next )?{_NUM_WORD} (?:business )?(?:hours?|days?|weeks?)"
    r"|by (?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|tomorrow|end of (?:the )?(?:day|week|month))"
    r"|next (?:week|month|monday|tuesday|wednesday|thursday|friday)"
    r"|on (?:monday|tuesday|wednesday|thursday|friday|saturday|sunday))\b",
    re.I,
)
_AMOUNT_WORDS = (
    r"(?:(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|"
    r"sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred|"
    r"thousand|and|a)[ -])+"
)
_CENTS = rf"(?:,? and (?:{_AMOUNT_WORDS}|\d{{1,2}} )cents?)?"
AMOUNT_PATTERN = re.compile(
    # Whisper writes "$25.49", "£12", "25 dollars"; pocketsphinx "twenty five dollars and ten cents".
    rf"((?:[$£€]\s?\d[\d,]*(?:\.\d{{2}})?|\b\d[\d,]*(?:\.\d{{2}})? (?:dollars|euros|pounds|bucks)\b){_CENTS}"
    rf"|\b{_AMOUNT_WORDS}(?:dollars|euros|pounds|bucks)\b{_CENTS})",
    re.I,
)
_MONTH = r"(?:january|february|march|april|may|june|july|august|september|october|november|december)"
_ORDINAL_WORD = (
    r"(?:(?:twenty|thirty)[ -](?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth)|first|second|third"
    r"|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|twelfth|thirteenth|fourteenth|fifteenth"
    r"|sixteenth|seventeenth|eighteenth|nineteenth|twentieth|thirtieth)"
)
_DAY = rf"(?:{_ORDINAL_WORD}|\d{{1,2}}(?:st|nd|rd|th)?)"
DATE_PATTERN = re.compile(
    # "March 3rd", "march the fifth", "the twenty first of January", "May 5, 2024", "12/05".
    rf"\b({_MONTH} (?:the )?{_DAY}(?:,? \d{{4}})?|(?:the )?{_DAY} of {_MONTH}"
    r"|\d{1,2}/\d{1,2}(?:/\d{2,4})?|\d{4}-\d{2}-\d{2}"
    r"|(?:last|next|this) (?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|week|month)"
    r"|yesterday|tomorrow)\b",
    re.I,
)
_NUMBER_IS = r"(?: number| no\.?| #)?\W*(?:(?:it's|it is|[a-z]{1,5})\W+)?$"
"""Between the entity's name and its digits: "account number is", "account number, it's",
"account #", or one short word the recognizer got wrong ("account number in 4512")."""
NUMBER_CONTEXT = (
    # "count number": how Whisper often hears "account number" after "my" (measured on espeak voices).
    ("account_number", re.compile(rf"\b(?:account|count(?= number)){_NUMBER_IS}", re.I)),
    ("order_number", re.compile(rf"\b(?:order|confirmation|tracking){_NUMBER_IS}", re.I)),
    ("ticket_number", re.compile(rf"\b(?:ticket|case|reference){_NUMBER_IS}", re.I)),
)
MIN_NUMBER_DIGITS = 4
DTMF_NODE_KINDS = (("account", "account_number"), ("order", "order_number"), ("ticket", "ticket_number"),
                   ("case", "ticket_number"), ("pin", "pin"), ("zip", "zip_code"))
STOPWORDS = frozenset(
    "a an and are as at be but by can could did do does for from had has have hello hi how i i'm i've if in is it"
    " it's just me my no not of oh ok okay on or our please so that that's the then there this to uh um us was we"
    " what when which will with would yeah yes you your you're all any about get got can't don't want need like"
    " thank thanks one two three four five six seven eight nine zero right well sure".split()
)
TONE_ORDER = {"calm": 0, "neutral": 1, "tense": 2, "angry": 3}
