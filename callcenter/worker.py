"""One endpoint process: a SIP endpoint (at most 4 calls), the speech model and the sinks.

``callcenter serve`` starts several of these behind the SIP front; each loads its own model
(one per process, never a global) and runs each answered call as a ``CallSession``. SIGTERM
stops taking calls, hangs up the live ones, finishes their records and drains the outboxes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path

from callcenter.aftercall import AfterCall
from callcenter.call_session import CallSession
from callcenter.settings import Settings
from callcenter.wiring import load_asr_engine
from ivr.flow import load_flow

log = logging.getLogger(__name__)

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "ivr" / "prompts"


async def run_worker(settings: Settings, *, port: int, index: int = 0, stop: asyncio.Event | None = None) -> int:
    from live.publisher import MqttPublisher
    from telephony.endpoint import SipEndpoint

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)

    data = settings.data_dir
    data.mkdir(parents=True, exist_ok=True)
    flow = load_flow(settings.ivr.flow, params={"agent_uri": settings.ivr.agent_uri})
    prompts_dir = settings.ivr.prompts_dir or flow.prompts_dir or PROMPTS_DIR
    engine = await asyncio.to_thread(load_asr_engine, settings)
    after = AfterCall(settings)
    await after.start()
    publisher = None
    sinks = []
    if settings.mqtt.enabled:
        publisher = MqttPublisher(settings.mqtt, data / f"mqtt-outbox-{index}.sqlite")
        await publisher.start()
        sinks.append(publisher.publish)
    endpoint = SipEndpoint(settings.sip, port=port, record_dir=data / "recordings", name=f"worker{index}")
    await endpoint.start()
    hold = flow.prompt_path("hold", prompts_dir) if "hold" in flow.prompts else None
    log.warning("worker %d answering on %s:%d", index, settings.sip.host, port)
    sessions: set[asyncio.Task] = set()

    async def serve_call(leg) -> None:
        session = CallSession(leg, settings, engine, flow=flow, prompts_dir=prompts_dir,
                              sinks=sinks, after_call=after, hold_prompt=hold)
        try:
            await session.run()
        except Exception:
            log.exception("call session failed")

    try:
        stopper = asyncio.create_task(stop.wait())
        while not stop.is_set():
            accept = asyncio.create_task(endpoint.accept())
            done, _ = await asyncio.wait({accept, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if accept not in done:
                accept.cancel()
                break
            task = asyncio.create_task(serve_call(accept.result()))
            sessions.add(task)
            task.add_done_callback(sessions.discard)
    finally:
        await endpoint.stop()  # hangs up live calls: their sessions see LegEnded and finish
        if sessions:
            await asyncio.wait(sessions, timeout=30)
        if publisher is not None:
            await publisher.stop(drain=True, timeout=5.0)
        await after.stop()
        if engine is not None:
            engine.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="callcenter-worker")
    p.add_argument("--settings-json", type=Path, required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--index", type=int, default=0)
    args = p.parse_args(argv)
    logging.basicConfig(level=os.environ.get("CALLCENTER_LOG_LEVEL", "WARNING"), stream=sys.stderr,
                        format=f"%(asctime)s worker{args.index} %(levelname)s %(name)s: %(message)s")
    settings = Settings.model_validate_json(args.settings_json.read_text())
    return asyncio.run(run_worker(settings, port=args.port, index=args.index))


if __name__ == "__main__":
    raise SystemExit(main())
