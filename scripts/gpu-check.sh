#!/usr/bin/env bash
# The GPU test set (tests/test_gpu.py) on a CUDA machine whose Python (3.12) has torch, peft, accelerate, pytest and
# pandas/pyarrow but not the rest of what cowest imports.
#   scripts/gpu-check.sh wheels   here, with PyPI reachable: the missing wheels, at this venv's versions, into .whl/
#   scripts/gpu-check.sh run      there: installs .whl/ into /tmp/site and runs `pytest --gpu tests/test_gpu.py`
# The wheels come to about 20 MB; keep .whl/ out of git (it is in .gitignore).
set -euo pipefail
cd "$(dirname "$0")/.."

NAMES="trl datasets transformers huggingface_hub dill multiprocess pydantic pydantic_core annotated-types typing-inspection"

case "${1:-}" in
  wheels)
    PY=${PY:-.venv/bin/python}
    mkdir -p .whl
    pins=$("$PY" -m pip freeze | grep -i -E "^($(echo "$NAMES" | tr ' ' '|' | sed 's/[-_]/[-_]/g'))==")
    # shellcheck disable=SC2086
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      -d .whl $pins
    ls -la .whl
    ;;
  run)
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:$PWD/src
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    python3 -m pytest --gpu -v -p no:cacheprovider tests/test_gpu.py
    ;;
  *)
    echo "usage: $0 wheels|run" >&2
    exit 2
    ;;
esac
