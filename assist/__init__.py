"""Agent assist: knowledge suggestions from what the caller says (issue 15).

Sits beside the speech stages as a consumer of their events: ``assist.articles`` reads the
knowledge base (Markdown files), ``assist.index`` keeps it in SQLite FTS5, ``assist.query``
turns recent caller speech into a search, ``assist.stage`` runs that live off the event loop.
Never imports ``callcenter``.
"""
