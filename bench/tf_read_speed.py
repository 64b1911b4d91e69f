"""Read speed of bertkit's TensorFlow checkpoint reader on the TF-written fixture.

    .venv/bin/python bench/tf_read_speed.py [--repeats 20]

Times (best of --repeats, after one warm-up): parsing the ``.index`` table alone; reading every
BERT weight (checksums verified, optimizer slots skipped) into numpy; and
``BertForPreTraining.from_pretrained`` on the TF directory vs on the same weights converted to
``model.safetensors`` (``bertkit convert --from-tf``). No peer is timed: every other reader of
this format needs TensorFlow, which is not installed here.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BERTKIT_SHARED_DATA", REPO.parent / "shared" / "data"))
FIXTURE = SHARED / "checkpoints" / "google-tiny-tf"


def best(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, default=FIXTURE, help="a Google TF checkpoint directory")
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    if not args.checkpoint.is_dir():
        raise SystemExit(f"{args.checkpoint}: not found (set BERTKIT_SHARED_DATA or pass --checkpoint)")

    import torch

    from bertkit import BertForPreTraining
    from bertkit.cli import main as cli
    from bertkit.tf_checkpoint import TFCheckpoint, find_prefix, load_bert_state_dict

    torch.set_num_threads(1)
    d = args.checkpoint
    prefix = find_prefix(d)
    bundle = TFCheckpoint(prefix)
    sd, report = load_bert_state_dict(d)
    weight_bytes = sum(a.nbytes for a in sd.values())
    data_bytes = sum(p.stat().st_size for p in d.glob(f"{prefix.name}.data-*"))
    print(
        f"checkpoint: {d} ({len(bundle.entries)} variables, {data_bytes / 1e6:.2f} MB of data; "
        f"{len(sd)} BERT weights = {weight_bytes / 1e6:.2f} MB, {report.skipped_training_state} optimizer/step variables skipped)"
    )
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch threads 1")

    t_index = best(lambda: TFCheckpoint(prefix), args.repeats)
    t_weights = best(lambda: load_bert_state_dict(d), args.repeats)
    t_tf = best(lambda: BertForPreTraining.from_pretrained(d), args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "converted"
        cli(["convert", "--from-tf", str(d), "--out", str(out), "--uncased"])
        t_st = best(lambda: BertForPreTraining.from_pretrained(out), args.repeats)
    print(f"{'step':<44}{'best (ms)':>10}")
    print(f"{'parse .index (' + str(len(bundle.entries)) + ' entries)':<44}{t_index * 1e3:>10.2f}")
    print(f"{'read + verify BERT weights':<44}{t_weights * 1e3:>10.2f}   {weight_bytes / t_weights / 1e6:.0f} MB/s")
    print(f"{'BertForPreTraining.from_pretrained(TF dir)':<44}{t_tf * 1e3:>10.2f}")
    print(
        f"{'BertForPreTraining.from_pretrained(converted)':<44}{t_st * 1e3:>10.2f}   TF / safetensors {t_tf / t_st:.2f}x"
    )


if __name__ == "__main__":
    main()
