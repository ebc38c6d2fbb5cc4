"""PocketSphinx on real espeak-ng speech: keywords, timings, partials, reuse, IVR grammar.

espeak-ng voices are hard for pocketsphinx (FACTS: ~70% WER), so free speech is checked on
keywords across several sentences, not on exact transcripts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speech.asr.base import AsrError, Hypothesis
from speech.asr.pocketsphinx_engine import PocketsphinxEngine
from speech.audio_io import resample, to_int16

CHUNK = 640  # 20 ms at 16 kHz, as the pipeline feeds it
MENU = ["billing", "technical support", "cancel service", "speak to an agent"]
# (sentence, keywords that should survive recognition)
SENTENCES = [
    ("i want to cancel my service today", {"want", "cancel"}),
    ("the internet is not working at my house", {"internet", "working"}),
    ("thank you very much for your help goodbye", {"thank", "help"}),
    ("i would like to pay my bill", {"would", "like"}),
    ("can you check my account balance please", {"balance", "check"}),
    ("please transfer me to a manager right now", {"please", "manager"}),
]


def pcm16(path: Path) -> bytes:
    """A WAV as 16 kHz int16 bytes (8 kHz telephone renders are resampled, as the edge does)."""
    data, rate = sf.read(str(path), dtype="int16")
    if rate != 16000:
        data = to_int16(resample(data.astype(np.float32) / 32768.0, rate))
    return data.astype("<i2").tobytes()


def feed(session, pcm: bytes) -> list[Hypothesis]:
    partials = []
    for i in range(0, len(pcm), CHUNK):
        hyp = session.accept(pcm[i : i + CHUNK])
        if hyp is not None:
            partials.append(hyp)
    return partials


@pytest.fixture(scope="module")
def engine():
    eng = PocketsphinxEngine()
    yield eng
    eng.close()


def test_free_speech_keywords_timings_and_partials(engine, tts):
    session = engine.open_session()
    hits = total = 0
    for text, keywords in SENTENCES:
        pcm = pcm16(tts(text, speed=130, pad_before=0.3, pad_after=0.4))
        duration = len(pcm) / 32000
        partials = feed(session, pcm)
        final = session.finish()
        assert final.final and not any(p.final for p in partials)
        heard = set(final.text.split())
        hits += len(keywords & heard)
        total += len(keywords)
        # 3+ s of audio: partials come out, each different from the one before.
        assert duration > 3.0 and partials
        assert all(a.text != b.text for a, b in zip(partials, partials[1:], strict=False))
        assert final.words and 0.0 <= final.confidence <= 1.0
        starts = [w.start for w in final.words]
        assert starts == sorted(starts)
        assert all(0.0 <= w.start < w.end <= duration + 0.01 for w in final.words)
        assert all(not w.word.startswith(("<", "[")) and "(" not in w.word for w in final.words)
    print(f"pocketsphinx keywords: {hits}/{total}")
    assert hits >= total * 0.6, f"only {hits}/{total} keywords recognized"
    session.close()


def test_session_is_reusable_and_times_restart_per_utterance(engine, tts):
    session = engine.open_session()
    pcm = pcm16(tts("the internet is not working at my house", speed=130, pad_before=0.5))
    feed(session, pcm)
    first = session.finish()
    feed(session, pcm)
    second = session.finish()
    assert first.text and second.text
    assert "internet" in second.text
    # Word times are seconds into each utterance: the second starts near 0.5 s again.
    assert second.words[0].start < 1.0
    assert session.finish().text == ""  # nothing fed: an empty final, no error
    session.close()
    session.close()


@pytest.mark.parametrize("rate", [16000, 8000])
def test_grammar_picks_the_menu_phrase(engine, tts, rate):
    session = engine.open_session(MENU)
    right = 0
    for phrase in MENU:
        pcm = pcm16(tts(phrase, sample_rate=rate, pad_before=0.3, pad_after=0.4))
        feed(session, pcm)
        final = session.finish()
        assert final.text in (*MENU, "")  # only menu phrases (or no choice) come out
        assert 0.0 <= final.confidence <= 1.0
        right += final.text == phrase
    print(f"pocketsphinx grammar at {rate} Hz: {right}/4")
    assert right >= 3
    session.close()


def test_grammar_normalizes_and_drops_unknown_words(engine, tts):
    session = engine.open_session(["Billing!", "Technical-Support qwzxv"])
    feed(session, pcm16(tts("technical support", pad_before=0.3, pad_after=0.4)))
    assert session.finish().text == "Technical-Support qwzxv"  # the caller's phrase, as given
    with pytest.raises(AsrError, match="qwzxv"):
        engine.open_session(["billing", "qwzxv"])


def test_decoders_are_pooled_not_loaded_per_session(tts):
    eng = PocketsphinxEngine()
    pcm = pcm16(tts("billing", pad_after=0.3))
    for grammar in (None, MENU, None, MENU):
        session = eng.open_session(grammar)
        feed(session, pcm)
        session.finish()
        session.close()
    assert eng.decoders_loaded == 1
    a, b = eng.open_session(), eng.open_session()
    a.accept(pcm[:CHUNK])
    b.accept(pcm[:CHUNK])  # two utterances at once need two decoders
    assert eng.decoders_loaded == 2
    a.close()
    b.close()
    eng.close()
    with pytest.raises(AsrError):
        eng.open_session()
