"""The agent web console: live calls from the broker, call history, call timelines."""

from live.console.app import create_console_app
from live.console.history import CallHistory, InMemoryHistory
from live.console.timeline import render_timeline

__all__ = ["CallHistory", "InMemoryHistory", "create_console_app", "render_timeline"]
