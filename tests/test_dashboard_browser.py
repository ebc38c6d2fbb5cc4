"""The KPI dashboard in headless Chromium, with data from real replayed calls.

Four fixtures go through ``callcenter replay`` (engine none: no recognizer, the audio analysis
and the store are real) into a fresh store; the console serves ``/dashboard`` over that store.
The charts' SVG must hold as many bars and points as the stored calls give, computed here from
the stored rows (not through ``summaries.kpis``), and the tiles the right figures.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from callcenter.kpi_source import StoreKpis
from live.console import create_console_app
from live.testing import free_port, serve
from summaries.kpi_settings import KpiSettings
from tests.e2e_console_support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    FIXTURES,
    ROOT,
    UI_TIMEOUT_MS,
    needs_chromium,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow, needs_chromium]

TOKEN = "dash-token"
WAVS = ("bridged_refund.wav", "bridged_escalation.wav", "dead_air.wav", "calm_billing.wav")


async def replay_into(data_dir: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callcenter", "--data-dir", str(data_dir), "replay", "--engine", "none",
        "--jobs", "1", *(str(FIXTURES / w) for w in WAVS),
        cwd=ROOT, env={k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")}, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 180)
    assert proc.returncode == 0, err.decode()[-2000:]


def stored_calls(url: str) -> list[dict[str, Any]]:
    """Per call: the figures the page should show, from the stored rows by hand."""
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text(
            "select c.id, c.started_at, c.reason, s.data from calls c join summaries s on s.call_id = c.id")).all()
    engine.dispose()
    out = []
    for call_id, started, reason, data in rows:
        s = json.loads(data) if isinstance(data, str) else data
        answered = bool(s["queue"]["agent_ids"]) or s["talk_ratio"].get("agent", 0) > 0
        out.append({"id": call_id, "day": str(started)[:10], "reason": reason, "answered": answered,
                    "handle": s["handle_time"] - s["queue"]["wait_s"] if answered else None,
                    "dead": s["dead_air_total_s"], "duration": s["duration"]})
    return out


async def test_dashboard_draws_replayed_calls(tmp_path: Path) -> None:
    playwright = pytest.importorskip("playwright.async_api")
    await replay_into(tmp_path)
    url = f"sqlite:///{tmp_path / 'callcenter.db'}"
    calls = stored_calls(url)
    assert len(calls) == len(WAVS)
    answered = [c for c in calls if c["answered"]]
    assert len(answered) >= 2  # the bridged fixtures have an agent side
    days = sorted({c["day"] for c in calls})
    bins = int(max(c["handle"] for c in answered) // 60) + 1
    reasons = {c["reason"] for c in calls}
    dead = sorted((c for c in calls if c["dead"] > 0), key=lambda c: -c["dead"])
    assert dead, "dead_air.wav has dead air"

    kpis = StoreKpis(url, KpiSettings(), wrap_up_s=10.0)
    app = create_console_app(token=TOKEN, broker_host=None, broker_port=0, topic_prefix="cc", kpis=kpis)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with serve(app, port), playwright.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            await page.goto(f"{base}/dashboard?token={TOKEN}")
            await page.wait_for_selector("body[data-ready='1']", timeout=UI_TIMEOUT_MS)
            assert errors == []

            async def count(selector: str) -> int:
                return int(await page.locator(selector).count())

            # trends: three line traces (calls, AHT, CSAT), one marker per day
            assert await count("#chart-trend g.trace.scatter") == 3
            assert await count("#chart-trend g.trace.scatter path.point") == 3 * len(days)
            # handle time histogram: one bar per bin from 0 to the longest answered call
            assert await count("#chart-handle_time g.trace.bars g.point") == bins
            assert await count("#chart-reasons g.trace.bars g.point") == len(reasons)
            assert await count("#chart-dead_air g.trace.bars g.point") == len(dead)
            links = await page.locator("#dead-air-calls a").evaluate_all("els => els.map(a => a.getAttribute('href'))")
            assert links == [f"/calls/{c['id']}" for c in dead]

            def tile(kpi: str) -> Any:
                return page.locator(f"#tiles-all dd[data-kpi='{kpi}']")

            assert await tile("calls").text_content() == str(len(calls))
            aht = sum(c["handle"] + 0.0 for c in answered) / len(answered)  # no ACD agent: no wrap-up
            assert float(await tile("aht_s").get_attribute("data-value")) == pytest.approx(aht, abs=0.01)
            m, s = divmod(round(aht), 60)
            assert await tile("aht_s").text_content() == f"{m}:{s:02d}"
            share = sum(c["dead"] for c in calls) / sum(c["duration"] for c in calls)
            assert await tile("dead_air_share").text_content() == f"{100 * share:.1f} %"
            assert await count("#tiles-agent .tile") == 1  # replayed calls have no ACD agent

            # every chart's CSV link answers with a header row
            for link in await page.locator("a.csv").evaluate_all("els => els.map(a => a.getAttribute('href'))"):
                r = await page.request.get(base + link)
                assert r.ok and r.headers["content-type"].startswith("text/csv"), link
                assert (await r.text()).splitlines()[0].count(",") >= 2, link
            await page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
        finally:
            await browser.close()
    kpis.close()
