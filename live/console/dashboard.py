"""The KPI dashboard: ``/dashboard`` and its REST endpoints, each also as CSV (``?format=csv``).

Figures come through the :class:`KpiSource` seam (the composition root passes an adapter over
the CRM store, ``callcenter.kpi_source``; ``live`` never imports ``summaries``). Every chart of
the page is drawn from one endpoint, so what a supervisor sees can be exported as it is:

- ``/api/kpis?by=agent|queue|day|all&from=&to=``: aggregates (tiles, trends) and the CSAT formula
- ``/api/kpis/calls``: per-call facts with each CSAT term's contribution
- ``/api/kpis/trend``, ``/handle_time``, ``/reasons``, ``/rising``, ``/dead_air``: one per chart

Charts are plotly.js, served from the installed ``plotly`` package (offline, no CDN).
"""

from __future__ import annotations

import asyncio
import csv
import importlib.util
import io
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import FileResponse, JSONResponse, Response

STATIC = Path(__file__).parent / "static"
TABLES = ("kpis", "calls", "trend", "handle_time", "reasons", "rising", "dead_air")
CHARTS = ("trend", "handle_time", "reasons", "rising", "dead_air")
GroupBy = Literal["agent", "queue", "day", "all"]
From = Annotated[date | None, Query(alias="from", description="first day (YYYY-MM-DD), inclusive")]
To = Annotated[date | None, Query(alias="to", description="last day (YYYY-MM-DD), inclusive")]
Format = Literal["json", "csv"]


@dataclass(frozen=True, slots=True)
class KpiQuery:
    """What a request asks for: a table name, a grouping (``kpis`` only) and a day range."""

    table: str
    by: GroupBy = "all"
    start: date | None = None
    end: date | None = None


@dataclass(frozen=True)
class KpiTable:
    """Rows with a fixed column order (the CSV header); ``meta`` goes with the JSON only."""

    columns: tuple[str, ...]
    rows: list[dict[str, Any]]
    meta: dict[str, Any] = field(default_factory=dict)


class KpiSource(Protocol):
    def table(self, query: KpiQuery) -> KpiTable:
        """The named table for the query; blocking (the router calls it from a thread)."""
        ...


def to_csv(table: KpiTable) -> str:
    """Header row, then one line per row; a dict-valued column becomes ``column.key`` columns."""
    header: list[str] = []
    for col in table.columns:
        keys = [k for r in table.rows if isinstance(r.get(col), dict) for k in r[col]]
        header += [f"{col}.{k}" for k in dict.fromkeys(keys)] if keys else [col]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in table.rows:
        flat: dict[str, Any] = {}
        for col in table.columns:
            value = row.get(col)
            if isinstance(value, dict):
                flat.update({f"{col}.{k}": v for k, v in value.items()})
            else:
                flat[col] = value
        writer.writerow(["" if flat.get(h) is None else flat[h] for h in header])
    return out.getvalue()


def plotly_js() -> Path | None:
    """``plotly.min.js`` bundled in the installed ``plotly`` package (not imported, only found)."""
    spec = importlib.util.find_spec("plotly")
    for where in (spec.submodule_search_locations or []) if spec else []:
        path = Path(where) / "package_data" / "plotly.min.js"
        if path.is_file():
            return path
    return None


def dashboard_router(source: KpiSource) -> APIRouter:
    router = APIRouter()

    async def answer(query: KpiQuery, fmt: str) -> Response:
        if query.start and query.end and query.start > query.end:
            raise HTTPException(422, "from is after to")
        table = await asyncio.to_thread(source.table, query)
        if fmt == "csv":
            name = f"{query.table}-{query.by}.csv" if query.table == "kpis" else f"{query.table}.csv"
            return Response(to_csv(table), media_type="text/csv; charset=utf-8",
                            headers={"Content-Disposition": f'attachment; filename="{name}"'})
        return JSONResponse({**table.meta, "columns": list(table.columns), "rows": table.rows})

    @router.get("/dashboard")
    async def page() -> FileResponse:
        return FileResponse(STATIC / "dashboard.html")

    @router.get("/dashboard/plotly.min.js")
    async def chart_library() -> FileResponse:
        path = plotly_js()
        if path is None:
            raise HTTPException(404, "plotly is not installed (pip install plotly)")
        return FileResponse(path, media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})

    @router.get("/api/kpis")
    async def kpis(by: GroupBy = "all", start: From = None, end: To = None,
                   format: Format = "json") -> Response:
        return await answer(KpiQuery("kpis", by, start, end), format)

    @router.get("/api/kpis/{name}")
    async def table(name: str, start: From = None, end: To = None,
                    format: Format = "json") -> Response:
        if name not in TABLES or name == "kpis":
            raise HTTPException(404, f"unknown KPI table {name!r}; one of {', '.join(TABLES[1:])}")
        return await answer(KpiQuery(name, "all", start, end), format)

    return router
