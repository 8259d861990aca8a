#!/usr/bin/env bash
# The GPU check, for the first CUDA machine (one command, under 8 minutes):
#   bash benchmarks/gpu_check.sh
# 1. installs the requirements (works on a bare machine with Python 3: pip is bootstrapped if missing);
# 2. runs the tests that exercise the CUDA paths (tests/test_cuda.py, marked `cuda`): the criterion on
#    CUDA equal to the CPU's, --gpu-decode (nvJPEG) equal to the CPU decode within JPEG tolerance, --amp
#    bf16, --channels-last, --compile, and SyncBatchNorm when two GPUs are present (skipped otherwise);
# 3. measures (benchmarks/gpu_check.py) a ResNet-152 training step at B=50 (fp32 vs bf16 + channels_last:
#    images/s, the criterion's share), val_video scoring of one 50-frame video and the --gpu-decode loader
#    on rendered 854x480 frames (frames/s, host CPU ms per frame), and prints one table with the projected
#    time of the published schedule.
# GPU_CHECK_DRY_RUN=1 runs it all on the CPU at tiny sizes, without installing anything: it checks the
# script itself (the CUDA tests are collected and skip), not the GPU.
set -uo pipefail
cd "$(dirname "$0")/.."
DRY=${GPU_CHECK_DRY_RUN:-0}
START=$SECONDS
PY=$(command -v python3 || command -v python || true)
if [ -z "$PY" ]; then echo "gpu_check: no python3 on this machine: install Python 3.10+ first" >&2; exit 2; fi
status=0

if [ "$DRY" = 1 ]; then
  echo "== DRY RUN (GPU_CHECK_DRY_RUN=1): CPU, tiny sizes, no installation"
else
  echo "== installing the requirements ($("$PY" --version 2>&1))"
  "$PY" -m pip --version >/dev/null 2>&1 || "$PY" -m ensurepip --upgrade >/dev/null 2>&1 \
    || { echo "gpu_check: pip is missing and ensurepip failed (apt-get install python3-pip)" >&2; exit 2; }
  "$PY" -m pip install -q -r requirements.txt || { echo "gpu_check: pip install -r requirements.txt failed" >&2; exit 2; }
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check: torch sees no CUDA device (torch $("$PY" -c 'import torch; print(torch.__version__, torch.version.cuda)'))." >&2
    echo "gpu_check: on a GPU machine, install a CUDA build of torch (https://pytorch.org) and rerun." >&2
    exit 2
  fi
  "$PY" -c "import torch; print(f'torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.device_count()} GPU(s):',
                                  ', '.join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())))"
fi

echo "== CUDA tests (python -m pytest -m cuda)"
"$PY" -m pytest -q -m cuda -rs tests/test_cuda.py || status=1

echo "== figures (benchmarks/gpu_check.py)"
if [ "$DRY" = 1 ]; then
  "$PY" benchmarks/gpu_check.py --dry-run || status=1
else
  "$PY" benchmarks/gpu_check.py || status=1
fi

echo "== gpu_check done in $((SECONDS - START)) s: $([ $status = 0 ] && echo 'all passed' || echo 'SOMETHING FAILED (see above)')"
exit $status
