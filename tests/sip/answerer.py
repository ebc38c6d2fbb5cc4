"""A bare endpoint in its own process that answers every call it can and keeps it until the
caller hangs up: the target of flood tests, so a pjlib abort kills this process, not pytest.

``python -m tests.sip.answerer PORT`` prints ``ready`` once listening, then on SIGTERM one JSON
line with what it answered and refused.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys

from telephony.endpoint import SipEndpoint
from telephony.items import LegEnded
from telephony.leg import CallLeg
from telephony.settings import SipSettings


async def _hold(leg: CallLeg) -> None:
    while not isinstance(await leg.inbox.get(), LegEnded):
        pass


async def main(port: int) -> int:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    answered = 0
    held: set[asyncio.Task[None]] = set()
    async with SipEndpoint(SipSettings(), port=port, name="answerer") as ep:
        print("ready", flush=True)
        async for leg in ep.incoming_calls(stop):
            answered += 1
            task = asyncio.create_task(_hold(leg))
            held.add(task)
            task.add_done_callback(held.discard)
        refused = dict(ep.refused)
    print(json.dumps({"answered": answered, "refused": refused}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(int(sys.argv[1]))))
