"""cowest: weak-strong LLM collaboration with preference alignment (CoWest)."""

__version__ = "0.1.0"
