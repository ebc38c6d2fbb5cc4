"""callcenter: CLI, settings and wiring of telephony → speech → events → summaries."""

__version__ = "0.1.0"
