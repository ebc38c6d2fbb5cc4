"""Word error rate through a live SIP call: real read speech over PCMU into `callcenter serve`.

The five LibriVox clips of Debian's ``pocketsphinx-testdata`` (``benchmarks/corpus.py`` fetches
and caches them) are played by a scripted caller process after it keys its way to the billing
queue, through Kamailio, a pjsua2 worker, 8 kHz PCMU both ways, the IVR, the pipeline with the
default recognizer and the CRM store. The stored caller transcript must be within the issue's
bound for telephone audio (WER ≤ 0.12), the same bound ``replay`` meets on the G.711 copies.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio

from benchmarks import corpus
from callcenter.serve import Service, start_service, stop_service
from tests.test_serve_calls import (
    MENU_S,
    WELCOME_S,
    kamailio_binary,
    place_call,
    service_settings,
    stored,
    wait_record,
)

pytestmark = [
    pytest.mark.sip,
    pytest.mark.slow,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(kamailio_binary() is None, reason="kamailio not installed (apt-get install kamailio)"),
]

MAX_WER_SIP = 0.12
LEAD_S = 9.0
"""Silence before the speech: welcome prompt, the keys to the billing queue, its prompt."""
GAP_S = 1.5


@pytest.fixture(scope="module")
def clips() -> list[corpus.Clip]:
    try:
        return corpus.librivox_clips()
    except corpus.CorpusUnavailable as exc:
        pytest.skip(f"LibriVox clips unavailable: {exc}")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def service(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("serve-wer")
    svc = await start_service(service_settings(tmp, **{"asr.engine": "auto"}), log_dir=tmp / "logs")
    try:
        yield svc
    finally:
        await stop_service(svc)


def caller_audio(clips: list[corpus.Clip], out: Path) -> tuple[Path, float]:
    rng = np.random.default_rng(5)
    parts = [corpus.white(LEAD_S, -60.0, rng)]
    for c in clips:
        parts += [c.audio(), corpus.white(GAP_S, -60.0, rng)]
    audio = np.concatenate(parts)
    return corpus.write_wav(out, audio), len(audio) / corpus.RATE


async def test_librivox_over_a_live_call_meets_the_telephone_bound(
    service: Service, clips: list[corpus.Clip], tmp_path: Path
) -> None:
    assert WELCOME_S + MENU_S < LEAD_S + 20  # the speech starts while the call is in the IVR or queue
    wav, seconds = caller_audio(clips, tmp_path / "librivox_caller.wav")
    res = await place_call(service.sip_uri, "--play", str(wav), "--dtmf", "1", "--dtmf", "123456#",
                           "--dtmf-delay", "2", "--hangup-after", f"{seconds + 3:.0f}", timeout_s=seconds + 60)
    assert res["answered"] and res["played"], res
    record = await wait_record(service, res["call_id"], timeout_s=60)  # written after the CRM write
    detail = stored(service, res["call_id"])
    assert detail is not None
    finals = [e for e in detail.events if e["type"] == "transcript.final" and e["party"] == "caller"]
    heard = " ".join(e["text"] for e in finals)
    result = corpus.wer([" ".join(c.reference for c in clips)], [heard])
    print(f"live SIP (PCMU) WER {result.wer:.3f} ({result.errors}/{result.reference_words}), {len(finals)} finals, "
          f"{record['frames_dropped']} frames dropped")
    assert result.wer <= MAX_WER_SIP
