#!/usr/bin/env bash
# Run bench/model_speed.py on a CUDA device in bf16 (inference fp32 + bf16, pre-training steps
# in bf16 autocast), bertkit vs transformers (sdpa). Takes well under 5 minutes on one GPU.
#
#   bash bench/gpu_check.sh            # results in $OUT (if set) or bench/out/
#   PYTHON=/path/to/python bash bench/gpu_check.sh
#
# Needs torch with CUDA, transformers, safetensors, tqdm; bertkit is used from src/ when it is
# not installed. Writes model_speed_gpu.txt (the table) and model_speed_gpu.json.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
DEST=${OUT:-bench/out}
mkdir -p "$DEST"

"$PY" - <<'PYEOF'
import torch, sys
if not torch.cuda.is_available():
    sys.exit("gpu_check: no CUDA device visible to torch")
print(f"gpu_check: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
PYEOF
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>/dev/null \
    | tee "$DEST/nvidia_smi.txt" || true

timeout 280 "$PY" bench/model_speed.py --device cuda --step-precision bf16 \
    --reps "${REPS:-20}" --warmup "${WARMUP:-5}" --json "$DEST/model_speed_gpu.json" \
    2>&1 | tee "$DEST/model_speed_gpu.txt"
echo "gpu_check: results in $DEST/model_speed_gpu.txt and $DEST/model_speed_gpu.json"
