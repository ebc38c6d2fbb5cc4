"""A call's timeline as a server-side SVG: speech per party, dead air, tone curve, alerts, keys.

Built from the call's event dicts alone (live or from history), so the picture in the console
and the one in a ticket are the same. No plotting library: a few rects and a polyline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

WIDTH = 960
LEFT = 84
RIGHT = 16
LANES = {"caller": 28, "agent": 58, "dead air": 88}
LANE_H = 18
TONE_TOP, TONE_H = 122, 70
MARKS_Y = 212
AXIS_Y = 236
HEIGHT = 262
COLORS = {"caller": "#2f6fdf", "agent": "#2aa876", "dead air": "#d9534f", "prompt": "#b9c2cf",
          "tone": "#e08e0b", "alert": "#c9302c", "key": "#6f42c1",
          "supervision": "#111827"}


@dataclass(frozen=True, slots=True)
class Span:
    lane: str
    start: float
    end: float


def _num(value: Any, default: float = 0.0) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def spans_of(events: list[dict[str, Any]]) -> tuple[list[Span], float]:
    """Speech, prompt and dead-air intervals, and the call's length (s)."""
    spans: list[Span] = []
    open_speech: dict[str, float] = {}
    open_dead: float | None = None
    open_prompt: float | None = None
    finals: list[Span] = []
    length = 0.0
    ended_at: float | None = None
    for e in events:
        kind, t = e.get("type"), _num(e.get("t"))
        if ended_at is None:
            length = max(length, t)  # events after the hang-up (the summary) do not stretch it
        party = e.get("party") or "caller"
        if kind == "speech.started":
            open_speech[party] = t
        elif kind == "speech.ended":
            start = _num(e.get("start"), open_speech.get(party, t))
            spans.append(Span(party, start, start + _num(e.get("duration"), t - start)))
            open_speech.pop(party, None)
        elif kind == "transcript.final":
            finals.append(Span(party, _num(e.get("start"), t), _num(e.get("end"), t)))
        elif kind == "dead_air.started":
            open_dead = _num(e.get("start"), t)
        elif kind == "dead_air.ended":
            spans.append(Span("dead air", _num(e.get("start"), open_dead or t), _num(e.get("end"), t)))
            open_dead = None
        elif kind == "playback.started":
            open_prompt = t
        elif kind == "playback.ended" and open_prompt is not None:
            spans.append(Span("prompt", open_prompt, t))
            open_prompt = None
        elif kind == "call.ended":
            ended_at = length = max(length, _num(e.get("duration"), t))
    for party, start in open_speech.items():
        spans.append(Span(party, start, length))
    if open_dead is not None:
        spans.append(Span("dead air", open_dead, length))
    if not any(s.lane in ("caller", "agent") for s in spans):
        spans.extend(finals)  # no VAD events recorded: fall back to transcript timings
    return spans, max(length, max((s.end for s in spans), default=0.0))


def _tick_step(length: float) -> float:
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800):
        if length / step <= 12:
            return float(step)
    return 3600.0


def render_timeline(events: list[dict[str, Any]], *, title: str = "") -> str:
    """The SVG document (a string) for one call's events."""
    spans, length = spans_of(events)
    length = max(length, 1.0)
    plot_w = WIDTH - LEFT - RIGHT

    def x(t: float) -> float:
        return round(LEFT + plot_w * min(max(t, 0.0), length) / length, 1)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12" role="img" '
        # the time axis, so a page can draw a playhead over the picture and seek on a click
        f'data-left="{LEFT}" data-plot-width="{plot_w}" data-length="{round(length, 3)}">',
        f"<title>{escape(title or 'call timeline')}</title>",
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>',
    ]
    for lane, y in LANES.items():
        out.append(f'<text x="8" y="{y + 13}" fill="#333">{lane}</text>')
        out.append(f'<rect x="{LEFT}" y="{y}" width="{plot_w}" height="{LANE_H}" fill="#f3f5f8"/>')
    out.append(f'<text x="8" y="{TONE_TOP + TONE_H // 2 + 4}" fill="#333">tone</text>')
    out.append(f'<rect x="{LEFT}" y="{TONE_TOP}" width="{plot_w}" height="{TONE_H}" fill="#f3f5f8"/>')
    out.append(f'<text x="8" y="{MARKS_Y + 4}" fill="#333">keys/IVR</text>')
    for s in spans:
        lane = "agent" if s.lane == "prompt" else s.lane
        if lane not in LANES:
            continue
        y = LANES[lane]
        w = max(x(s.end) - x(s.start), 1.0)
        out.append(
            f'<rect class="span {escape(s.lane).replace(" ", "-")}" x="{x(s.start)}" y="{y}" '
            f'width="{w:.1f}" height="{LANE_H}" fill="{COLORS[s.lane]}" rx="2">'
            f"<title>{escape(s.lane)} {s.start:.1f}-{s.end:.1f} s</title></rect>"
        )
    points = []
    for e in events:
        if e.get("type") == "tone.update":
            t = (_num(e.get("start"), _num(e.get("t"))) + _num(e.get("end"), _num(e.get("t")))) / 2
            score = min(max(_num(e.get("score")), 0.0), 1.0)
            points.append((x(t), round(TONE_TOP + TONE_H * (1 - score), 1)))
    if points:
        out.append(
            f'<polyline class="tone" fill="none" stroke="{COLORS["tone"]}" stroke-width="2" '
            f'points="{" ".join(f"{px},{py}" for px, py in points)}"/>'
        )
        out += [f'<circle cx="{px}" cy="{py}" r="3" fill="{COLORS["tone"]}"/>' for px, py in points]
    for e in events:
        kind, t = e.get("type"), _num(e.get("t"))
        if kind in ("tone.alert", "talk_over"):
            cx = x(t)
            label = "; ".join(map(str, e.get("reasons") or [])) or str(kind)
            out.append(
                f'<path class="alert" d="M{cx - 6},{TONE_TOP - 2} L{cx + 6},{TONE_TOP - 2} '
                f'L{cx},{TONE_TOP + 9} Z" fill="{COLORS["alert"]}"><title>{escape(label)}</title></path>'
            )
        elif kind in ("dtmf", "ivr.step"):
            label = "key" if kind == "dtmf" else f"{e.get('node', '')}: {e.get('action', '')}"
            out.append(
                f'<circle class="mark" cx="{x(t)}" cy="{MARKS_Y}" r="4" fill="{COLORS["key"]}">'
                f"<title>{escape(label)}</title></circle>"
            )
        elif kind == "supervision":  # a supervisor joined, switched, left (or was refused)
            label = f"supervisor {e.get('supervisor_id', '')}: {e.get('mode', '')} ({e.get('reason', '')})"
            cx = x(t)
            out.append(
                f'<rect class="supervision" x="{cx - 4}" y="{MARKS_Y - 4}" width="8" height="8" '
                f'fill="{COLORS["supervision"]}"><title>{escape(label)}</title></rect>'
            )
    step = _tick_step(length)
    out.append(f'<line x1="{LEFT}" y1="{AXIS_Y}" x2="{WIDTH - RIGHT}" y2="{AXIS_Y}" stroke="#888"/>')
    tick = 0.0
    while tick <= length + 1e-9:
        out.append(f'<line x1="{x(tick)}" y1="{AXIS_Y}" x2="{x(tick)}" y2="{AXIS_Y + 5}" stroke="#888"/>')
        label = f"{int(tick)}s" if step < 60 else f"{int(tick // 60)}m"
        out.append(f'<text x="{x(tick)}" y="{AXIS_Y + 18}" text-anchor="middle" fill="#555">{label}</text>')
        tick += step
    out.append("</svg>")
    return "\n".join(out)
