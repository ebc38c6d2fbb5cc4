"""summaries package."""
