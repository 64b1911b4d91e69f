#!/usr/bin/env bash
# The fine-tuning proofs that need hours of this project's 2-core CPU, in minutes on one GPU:
# MiniLM on DisflQA, BoolQ and news20, 5 seeds each, through bench/finetune_real.py (bf16
# autocast on CUDA); each task's table row is printed as soon as it is done. Prepare the data here first
# (the GPU machine cannot see ../shared/data):
#
#   .venv/bin/python bench/pack_device_data.py           # -> .devdata/ (~56 MiB, git-ignored)
#   # device tool: run(command="bash bench/device_proofs.sh", carry=[".devdata"], timeout_s=590)
#
# Writes $OUT/finetune_real.txt (the RESULTS.md table rows) and $OUT/summary.json (when every
# task finished). TASKS="boolq" (etc.) and SEEDS=N narrow it; FT_LIMIT (s) bounds it.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export BERTKIT_SHARED_DATA="$PWD/.devdata"
DEST=${OUT:-bench/out}
mkdir -p "$DEST"
[ -d .devdata/checkpoints/minilm-l6-uncased ] || { echo "no .devdata: run bench/pack_device_data.py here and carry .devdata"; exit 2; }
"$PY" -c "import torch, sys; torch.cuda.is_available() or sys.exit('device_proofs: no CUDA device'); print(torch.cuda.get_device_name(0), torch.__version__)"

timeout "${FT_LIMIT:-560}" "$PY" bench/finetune_real.py --tasks ${TASKS:-disflqa boolq news20} --seeds "${SEEDS:-5}" \
    --device cuda --precision bf16 --no-progress --out "$DEST/real" 2>&1 | tee "$DEST/finetune_real.txt"
cp "$DEST/real/summary.json" "$DEST/summary.json" 2>/dev/null
rm -rf "$DEST/real"  # checkpoints do not come back (size limits); the numbers are in the two files

