"""``callcenter call``: a real SIP test call that plays a recording and presses keys."""

from __future__ import annotations

import argparse
import json
import sys

from callcenter.settings import Settings


async def run_test_call(args: argparse.Namespace, settings: Settings) -> int:
    from speech.audio_io import AudioFileError, load_recording
    from telephony.test_caller import place_test_call, secure_settings, tls_uri

    if args.play is not None:
        try:
            load_recording(args.play)  # fail early, with the file named
        except AudioFileError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    sip = secure_settings(settings.sip, tls=args.tls, srtp=args.srtp, ca=args.ca)
    result = await place_test_call(
        tls_uri(args.uri) if args.tls else args.uri,
        play=args.play,
        dtmf=list(args.dtmf),
        dtmf_delay=args.dtmf_delay,
        hangup_after=args.hangup_after,
        settings=sip,
        dtmf_mode="inband" if args.inband else "rfc4733",
        port=args.local_port or None,
        record_dir=settings.data_dir / "test-calls",
        dtmf_first=args.dtmf_first,
    )
    print(json.dumps(result.to_dict(), indent=2, default=str))
    return 0 if result.answered else 1
