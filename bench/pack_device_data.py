"""Pack what bench/device_proofs.sh needs into .devdata/ (git-ignored) so it can travel to a GPU
machine that cannot see ../shared/data and takes at most 64 MiB of working tree.

The MiniLM checkpoint's weights are stored in fp16 (45 MB instead of 91 MB): rounding moves each
weight by at most 2^-11 of its value (the script prints the worst error relative to each tensor's
largest weight), and fine-tuning loads them back into fp32; say so next to results made from this
copy. The task tables are gzipped (bertkit reads ``.gz``).

    .venv/bin/python bench/pack_device_data.py            # then: du -sh .devdata
"""

from __future__ import annotations

import gzip
import os
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BERTKIT_SHARED_DATA", REPO.parent / "shared" / "data"))
DEST = REPO / ".devdata"
TASKS = ("boolq", "news20", "disflqa", "polarity")


def main() -> int:
    from safetensors.torch import load_file, save_file

    src = SHARED / "checkpoints" / "minilm-l6-uncased"
    if not src.is_dir():
        print(f"no checkpoint at {src} (set BERTKIT_SHARED_DATA)", file=sys.stderr)
        return 2
    if DEST.exists():
        shutil.rmtree(DEST)
    ck = DEST / "checkpoints" / "minilm-l6-uncased"
    ck.mkdir(parents=True)
    for name in ("config.json", "vocab.txt", "tokenizer_config.json"):
        shutil.copy(src / name, ck / name)
    weights = load_file(src / "model.safetensors")
    worst = max(
        ((t.half().float() - t).abs().max() / t.abs().max().clamp(min=1e-12)).item()
        for t in weights.values()
        if t.is_floating_point()
    )
    save_file(
        {k: (v.half() if v.is_floating_point() else v) for k, v in weights.items()},
        ck / "model.safetensors",
        metadata={"format": "pt"},
    )
    print(f"checkpoint: fp16, worst relative rounding error {worst:.2e} of a tensor's max")
    for task in TASKS:
        (DEST / "tasks" / task).mkdir(parents=True)
        for f in sorted((SHARED / "tasks" / task).iterdir()):
            if f.suffix in (".tsv", ".jsonl"):
                with open(f, "rb") as a, gzip.open(DEST / "tasks" / task / (f.name + ".gz"), "wb") as b:
                    shutil.copyfileobj(a, b)
            elif f.suffix == ".json":
                shutil.copy(f, DEST / "tasks" / task / f.name)
    total = sum(p.stat().st_size for p in DEST.rglob("*") if p.is_file())
    print(f"{DEST}: {total / 2**20:.1f} MiB")
    return 0 if total < 60 * 2**20 else 1


if __name__ == "__main__":
    raise SystemExit(main())
