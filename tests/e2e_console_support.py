"""Helpers of the end-to-end console tests: replay subprocesses, MQTT and console checks."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from callcenter.history import StoreHistory
from callcenter.settings import load_settings
from live.broker import find_mosquitto
from live.testing import Received, Recorder

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "audio_fixtures"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
TOKEN = "e2e-token"
PREFIX = "callcenter"
REPLAY_TIMEOUT_S = 90.0
"""Generous: a replay is faster than real time, but the machine is shared."""
UI_TIMEOUT_MS = 30_000
needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                    reason=f"{CHROMIUM} missing (apt-get install chromium)")
needs_mosquitto = pytest.mark.skipif(find_mosquitto() is None,
                                     reason="mosquitto binary missing (apt-get install mosquitto)")


# Records whether the dead-air banner was ever shown: a replay runs faster than real time, so
# the banner may be up for a fraction of a second only.
WATCH_DEAD_AIR = """
window.__deadAirShown = 0;
document.addEventListener('DOMContentLoaded', () => {
  const box = document.querySelector('#deadair');
  if (!box) return;
  new MutationObserver(() => { if (!box.hidden) window.__deadAirShown += 1; })
    .observe(box, {attributes: true, attributeFilter: ['hidden']});
});
"""


# -- helpers --------------------------------------------------------------------------------


@dataclass
class ReplayRun:
    returncode: int
    events: list[dict[str, Any]]
    """The replay's ``--json`` output: every event as its ``to_dict()``, in emission order."""
    stderr: str

    @property
    def call_id(self) -> str:
        return self.events[0]["call_id"]

    def of(self, *types: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] in types]


def replay_env(bport: int) -> dict[str, str]:
    """The test's environment without any CALLCENTER_* of the caller's, MQTT at the test broker."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")}
    env.update({"CALLCENTER_MQTT__HOST": "127.0.0.1", "CALLCENTER_MQTT__PORT": str(bport)})
    return env


async def start_replay(data_dir: Path, bport: int, wav: str) -> asyncio.subprocess.Process:
    # ``--data-dir`` is an option of ``callcenter`` itself, so it goes before the subcommand.
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callcenter", "--data-dir", str(data_dir),
        "replay", "--publish", "--json", "--engine", "pocketsphinx", str(FIXTURES / wav),
        cwd=ROOT, env=replay_env(bport), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )


async def finish_replay(proc: asyncio.subprocess.Process, *, returncode: int = 0) -> ReplayRun:
    try:
        out, err = await asyncio.wait_for(proc.communicate(), REPLAY_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.communicate()
        raise
    events = []
    for line in out.decode().splitlines():
        if line.startswith("{"):
            data = json.loads(line)
            data.pop("file", None)  # the printer's label, not part of the event
            if "call_id" in data:
                events.append(data)
    run = ReplayRun(proc.returncode or 0, events, err.decode(errors="replace"))
    assert run.returncode == returncode, f"replay exited {run.returncode}: {run.stderr[-3000:]}"
    assert run.events and run.events[0]["type"] == "call.started", run.stderr[-2000:]
    return run


def call_stream(messages: list[Received], call_id: str, category: str = "events") -> list[Received]:
    """Messages of one call's topic, adjacent duplicates (at-least-once redelivery) dropped."""
    topic = f"{PREFIX}/calls/{call_id}/{category}"
    out: list[Received] = []
    for m in messages:
        if m.topic == topic and not (out and out[-1].payload == m.payload):
            out.append(m)
    return out


def has_summary(call_id: str):
    return lambda msgs: any(m.json()["type"] == "summary" for m in call_stream(msgs, call_id))


def assert_mqtt_matches_replay(rec: Recorder, run: ReplayRun) -> None:
    """The ``events`` topic carries exactly the replay's events, in order; finals and alerts
    also reach their category topics at QoS 1."""
    cid = run.call_id
    stream = call_stream(rec.messages, cid)
    assert [m.json() for m in stream] == run.events
    assert all(m.qos == 1 for m in stream)
    finals = [m for m in call_stream(rec.messages, cid, "transcript") if m.json()["type"] == "transcript.final"]
    assert [m.json() for m in finals] == run.of("transcript.final")
    assert finals and all(m.qos == 1 for m in finals)
    alerts = call_stream(rec.messages, cid, "alerts")
    from speech.event_base import Category
    from speech.events import EVENT_CLASSES

    # every event class that declares the alerts category (tone, dead air, talk-over, cues, rules)
    alert_types = [t.value for t, cls in EVENT_CLASSES.items() if cls.meta.category is Category.ALERTS]
    assert [m.json() for m in alerts] == run.of(*alert_types)
    assert all(m.qos == 1 for m in alerts)
    state = call_stream(rec.messages, cid, "state")
    assert [m.json()["type"] for m in state] == ["call.started", "call.ended"]


def final_texts(events: list[dict[str, Any]]) -> list[str]:
    return [e["text"] for e in events if e["type"] == "transcript.final" and e.get("text")]


def search_word(texts: list[str]) -> str:
    """A distinctive word of the transcript for the history search (the longest one)."""
    words = [w.strip(".,?!").lower() for t in texts for w in t.split()]
    return max(words, key=len)


async def shoot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    keep_shot(path)
    return path


def keep_shot(path: Path) -> None:
    assert path.stat().st_size > 5_000
    if keep := os.environ.get("E2E_CONSOLE_SHOTS"):
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / path.name)


async def open_new_call(page, base: str, seen: set[str], prefix: str) -> tuple[str, str]:
    """Wait on the live list for a call not in ``seen`` whose id starts with ``prefix``;
    returns its id and the status the list showed when it appeared."""
    handle = await page.wait_for_function(
        """([prefix, seen]) => {
            for (const tr of document.querySelectorAll('#calls tbody tr')) {
              const id = tr.querySelector('a').textContent;
              if (id.startsWith(prefix) && !seen.includes(id)) return [id, tr.children[3].textContent];
            }
            return null;
        }""",
        arg=[prefix, sorted(seen)], timeout=UI_TIMEOUT_MS, polling=50,
    )
    call_id, status = await handle.json_value()
    seen.add(call_id)
    return call_id, status


async def wait_call_over(page) -> None:
    await page.locator("#summary-card").wait_for(state="visible", timeout=UI_TIMEOUT_MS)
    await page.wait_for_function("document.querySelector('#status').textContent === 'ended'",
                                 timeout=UI_TIMEOUT_MS)


async def find_in_history(page, base: str, q: str, call_id: str) -> None:
    await page.goto(f"{base}/history")
    await page.fill("input[name=q]", q)
    await page.click("button[type=submit]")
    await page.wait_for_function(
        "(id) => [...document.querySelectorAll('#results tbody tr a')].some(a => a.textContent === id)",
        arg=call_id, timeout=UI_TIMEOUT_MS)


async def wait_stored(history: StoreHistory, call_id: str, timeout_s: float = 20.0) -> dict[str, Any]:
    """The call's CRM record, once the worker's durable writer has it."""
    async with asyncio.timeout(timeout_s):
        while True:
            record = await asyncio.to_thread(history.get, call_id)
            if record is not None:
                return record
            await asyncio.sleep(0.2)


def store_url(data_dir: Path) -> str:
    return load_settings(overrides={"data_dir": str(data_dir)}, environ={}).store_url


def stored_call(url: str, call_id: str) -> Any:
    """The CRM store's record of ``call_id`` (``CallDetail``), with its summary."""
    from summaries.store import CrmStore

    store = CrmStore(url)
    store.start()
    try:
        detail = store.get_call(call_id)
    finally:
        store.stop()
    assert detail is not None and detail.summary is not None, call_id
    return detail


REFUND_AGENT_WORDS = {"order", "verify", "hold", "waiting", "email", "refund", "refunded", "covered"}
"""Words of the agent side of ``bridged_refund`` a recognizer hears through G.711 twice."""


def assert_refund_conversation(detail: Any) -> dict[str, Any]:
    """The stored ``bridged_refund`` call has both parties' transcripts and both parties' talk
    time; returns the summary's dict for more checks."""
    text = {p: " ".join(e["text"].lower() for e in detail.events
                        if e["type"] == "transcript.final" and e["party"] == p) for p in ("caller", "agent")}
    heard = set(text["agent"].replace(".", " ").replace(",", " ").split())
    assert len(heard & REFUND_AGENT_WORDS) >= 3, text
    assert len(text["caller"].split()) >= 5, text
    summary: dict[str, Any] = detail.summary.to_dict()
    assert summary["talk_ratio"]["agent"] > 0.2 and summary["talk_ratio"]["caller"] > 0.2, summary["talk_ratio"]
    return summary
