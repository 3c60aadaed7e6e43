"""The process that hosts one llama.cpp server for `LlamaCppServer`: `python -m cowest.models.llamacpp_process`.

It reads the server's settings as one JSON line on stdin (never argv: the API key must not show in `ps`), builds
xllamacpp's in-process server, prints `listening ADDRESS` and then blocks on stdin. End of stdin (the parent closed
it, or died) ends the process at once with `os._exit`: no destructor runs, so a stuck llama.cpp thread cannot keep
it alive, and the kernel frees the port and the model. Exit code 3: llama.cpp refused the settings (bad or truncated
GGUF, port in use, out of memory); its reasons are on stderr.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any

INIT_FAILED = 3


def _params(knobs: dict[str, Any]) -> Any:
    import xllamacpp

    p = xllamacpp.CommonParams()
    p.model.path = knobs["gguf_path"]
    p.n_ctx = knobs["n_ctx"] * knobs["n_parallel"]
    p.n_parallel = knobs["n_parallel"]
    p.kv_unified = False  # fixed per-slot context: a long request cannot starve a concurrent one
    p.cpuparams.n_threads = knobs["n_threads"]
    p.cpuparams_batch.n_threads = knobs["n_threads"]
    p.hostnames = [knobs["host"]]
    p.port = knobs["port"]
    p.use_jinja = True  # use the chat template embedded in the GGUF
    p.cache_prompt = knobs["reuse_prefix"]  # off: every prompt computed whole, its answer whatever came before
    p.verbosity = 1  # errors only; llama.cpp's info log is very chatty
    p.api_keys = [knobs["api_key"]]
    if knobs.get("alias"):
        p.model_alias = {knobs["alias"]}
    return p


def main() -> None:
    """Serve until stdin closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the parent decides when to stop
    knobs = json.loads(sys.stdin.readline())
    import xllamacpp

    try:
        server = xllamacpp.Server(_params(knobs))
    except RuntimeError as e:  # xllamacpp says only "Failed to init server"; llama.cpp's reasons went to stderr
        print(f"llama.cpp: {e}", file=sys.stderr, flush=True)
        os._exit(INIT_FAILED)
    try:
        print(f"listening {server.listening_address}", flush=True)
        sys.stdin.read()  # until the parent closes it, or dies
    finally:  # whatever happened: skip the server's destructor, which joins llama.cpp's threads and could hang
        os._exit(0)


if __name__ == "__main__":
    main()
