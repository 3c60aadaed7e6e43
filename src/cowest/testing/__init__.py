"""Helpers for tests and benchmarks (a fault-injecting OpenAI-compatible server)."""
