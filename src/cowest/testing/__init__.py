"""Helpers for tests and benchmarks: a fault-injecting OpenAI-compatible server (`faults`), an app on a uvicorn
thread (`serving`)."""
