"""What leaves the pipeline live is redacted before any sink sees it."""

from __future__ import annotations

from callcenter.aftercall import LIVE_DTMF_VISIBLE, LiveDtmfMask
from speech.events import CallEnded, DtmfDigit, IvrStep


def keys(mask: LiveDtmfMask, digits: str, *, start: float = 0.0, step: float = 0.3, call: str = "c1") -> str:
    return "".join(
        mask(DtmfDigit(call_id=call, t=start + i * step, digit=d)).digit  # type: ignore[attr-defined]
        for i, d in enumerate(digits)
    )


def test_a_long_keypad_run_shows_only_its_first_six_digits() -> None:
    mask = LiveDtmfMask()
    assert keys(mask, "4539148803436467#") == "453914" + "X" * 10 + "#"
    assert LIVE_DTMF_VISIBLE == 6


def test_menu_choices_and_short_codes_stay_visible() -> None:
    mask = LiveDtmfMask()
    assert keys(mask, "1") == "1"
    assert keys(mask, "2", start=10.0) == "2"  # a new run after a pause
    assert keys(mask, "123456#", start=20.0) == "123456#"


def test_runs_restart_after_a_pause_a_non_digit_key_a_new_ivr_node_or_per_call() -> None:
    mask = LiveDtmfMask()
    assert keys(mask, "12345") == "12345"
    assert keys(mask, "6789", start=10.0) == "6789"  # 10 s later: a new run
    assert keys(mask, "1234*5678", start=30.0) == "1234*5678"
    assert keys(mask, "12345", start=40.0) == "12345"
    mask(IvrStep(call_id="c1", t=42.0, node="account", action="enter"))
    assert keys(mask, "67890", start=42.1) == "67890"
    assert keys(mask, "1234567", call="c2") == "123456X"
    mask(CallEnded(call_id="c2", t=5.0))
    assert keys(mask, "1234567", start=5.1, call="c2") == "123456X"
