"""How events look on a terminal: one readable line each, or one JSON object each.

The line is the event's own ``render()`` (declared with its class in ``speech.events``); this
module only prints.
"""

from __future__ import annotations

import json
from typing import TextIO

from speech.events import Event


class EventPrinter:
    """A pipeline sink that prints events as they happen."""

    def __init__(self, out: TextIO, *, as_json: bool = False, label: str = "") -> None:
        self.out = out
        self.as_json = as_json
        self.label = label

    def __call__(self, event: Event) -> None:
        if self.as_json:
            data = event.to_dict()
            if self.label:
                data["file"] = self.label
            self.out.write(json.dumps(data, ensure_ascii=False) + "\n")
            return
        line = event.render()
        if line is not None:
            self.out.write(f"{event.t:8.2f}  {line}\n")
        self.out.flush()
