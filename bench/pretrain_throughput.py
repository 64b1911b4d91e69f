"""Pre-training throughput through the real loop vs transformers' BertForPreTraining, one run.

For each model (mini, base) and precision (fp32, bf16 autocast), on the same prepared data:

  bertkit       ``bertkit.pretrain.pretrain`` end to end: PretrainingLoader, Trainer (AdamW,
                clipping, scheduler, logging); tokens/s and MFU from its metrics.jsonl, over the
                steps after the first ``--warmup`` ones.
  transformers  the same batches, a minimal loop around ``transformers.BertForPreTraining``
                (all-position MLM logits with -100 labels, as it is used), the same optimizer
                (``bertkit.optim.build_optimizer``), clipping 1.0, the same autocast.

Both report tokens/s (input positions, padding included) and MFU with the same analytic FLOP
count (``bertkit.pretrain.bert_flops_fn``, docs/TRAINING.md) and the same peak
(``bertkit.runtime.peak_flops``), so MFU ratios equal speed ratios. Cases are run one after the
other in one process; on a shared machine run it when it is quiet.

    python bench/pretrain_throughput.py --data prepared/sample-128 --tokenizer VOCAB_DIR
    python bench/pretrain_throughput.py ... --models mini --precisions bf16 --steps 10 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch


def run_bertkit(data, tokenizer, model, precision, steps, warmup, batch_size, device, out_root):
    from bertkit.pretrain import PretrainConfig, pretrain

    out = Path(out_root) / f"bertkit-{model}-{precision}"
    cfg = PretrainConfig(
        data=str(data),
        out=str(out),
        model=model,
        tokenizer=str(tokenizer),
        max_steps=warmup + steps,
        batch_size=batch_size,
        lr=1e-4,
        warmup_steps=1,
        precision=precision,
        device=device,
        save_every=0,
        eval_every=0,
        eval_batches=1,
        log_every=max(1, warmup),
        progress=False,
    )  # record 1 = the warm-up steps
    pretrain(cfg)
    recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    timed = [r for r in recs if r["kind"] == "train" and r["step"] > warmup]
    tok = sum(r["tokens_per_s"] for r in timed) / len(timed)
    mfu = sum(r["mfu"] for r in timed) / len(timed)
    return {"tokens_per_s": tok, "mfu": mfu}


def run_transformers(data, model, precision, steps, warmup, batch_size, device):
    import transformers

    from bertkit.config import BertConfig
    from bertkit.optim import build_optimizer
    from bertkit.pretrain import bert_flops_fn
    from bertkit.pretraining.loader import PretrainingLoader
    from bertkit.runtime import autocast, peak_flops

    loader = PretrainingLoader(data, batch_size=batch_size)
    cfg = BertConfig.from_preset(model, vocab_size=loader.manifest["vocab_size"])
    hf_cfg = transformers.BertConfig(
        **{k: v for k, v in cfg.to_dict().items() if k not in ("model_type",)}, attn_implementation="sdpa"
    )
    torch.manual_seed(0)
    dev = torch.device(device)
    net = transformers.BertForPreTraining(hf_cfg).to(dev).train()
    opt = build_optimizer(net, "adamw", lr=1e-4)
    flops_fn = bert_flops_fn(cfg)
    it = iter(loader)
    tokens = flops = 0.0
    t0 = None
    for step in range(warmup + steps):
        if step == warmup:
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        b = {k: v.to(dev) for k, v in next(it).items()}
        B, T = b["input_ids"].shape
        labels = torch.full((B, T), -100, dtype=torch.long, device=dev)
        labels.scatter_(1, b["masked_positions"], b["mlm_labels"])  # padded slots: position 0, label -100
        labels[:, 0] = -100
        with autocast(precision, dev):
            out = net(
                input_ids=b["input_ids"],
                attention_mask=b["attention_mask"],
                token_type_ids=b["token_type_ids"],
                labels=labels,
                next_sentence_label=b.get("nsp_labels"),
            )
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step >= warmup:
            tokens += B * T
            flops += flops_fn(b)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    secs = time.perf_counter() - t0
    return {"tokens_per_s": tokens / secs, "mfu": flops / secs / peak_flops(dev, precision)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="prepared data (bertkit prepare), e.g. seq 128")
    ap.add_argument("--tokenizer", required=True, help="the vocabulary directory the data was prepared with")
    ap.add_argument("--models", nargs="+", default=["mini", "base"])
    ap.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    ap.add_argument("--steps", type=int, default=10, help="timed steps per case")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps per case (also the metrics window)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)

    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"threads {torch.get_num_threads()}, cpus {os.cpu_count()}, device {args.device}, "
        f"batch {args.batch_size}, {args.steps} timed steps after {args.warmup}",
        flush=True,
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            for prec in args.precisions:
                bk = run_bertkit(
                    args.data, args.tokenizer, model, prec, args.steps, args.warmup, args.batch_size, args.device, tmp
                )
                hf = run_transformers(args.data, model, prec, args.steps, args.warmup, args.batch_size, args.device)
                row = {
                    "model": model,
                    "precision": prec,
                    "bertkit": bk,
                    "transformers": hf,
                    "speedup": bk["tokens_per_s"] / hf["tokens_per_s"],
                }
                rows.append(row)
                print(
                    f"{model:<5} {prec:<5} bertkit {bk['tokens_per_s']:>9.0f} tok/s MFU {100 * bk['mfu']:5.1f}%   "
                    f"transformers {hf['tokens_per_s']:>9.0f} tok/s MFU {100 * hf['mfu']:5.1f}%   "
                    f"x{row['speedup']:.2f}",
                    flush=True,
                )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
