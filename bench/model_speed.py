"""bertkit vs transformers (sdpa): model speed, same config, same weights, same inputs, one run.

Cases (the issue's Speed section):
  infer-fp32 / infer-bf16   BertModel forward, base, batch 32, seq 128 (bf16 = autocast)
  step-mini / step-base     one pre-training step (forward, MLM+NSP loss, backward, AdamW),
                            mini b32 s128 and base b8 s128, 20 masked positions per sequence

bertkit's step projects onto the vocabulary only at the 20 masked positions (as the original
BERT) and runs its last encoder layer only for those rows and [CLS]; transformers'
BertForPreTraining projects every position and ignores the rest with -100 labels, which is how
it is used. Both use the same optimizer (torch.optim.AdamW, fused kernel) and settings.

Reported per case and implementation: median seconds per call, sequences/s, tokens/s and
achieved GFLOP/s, where the FLOPs are the same analytic count for both (the work the step
needs: encoder + attention + pooler + MLM head at the masked positions; x3 for a training
step), so GFLOP/s ratios equal speed ratios. Repetitions of the two implementations are
interleaved so background load affects both alike.

    python bench/model_speed.py                      # CPU, threads = cores
    python bench/model_speed.py --device cuda --json out.json   # steps in bf16 autocast
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import torch

from bertkit import BertConfig, BertForPreTraining, BertModel, pretraining_loss

CASES = ("infer-fp32", "infer-bf16", "step-mini", "step-base")
MASKED_PER_SEQ = 20


@dataclass
class Case:
    name: str
    preset: str
    batch: int
    seq: int
    train: bool
    bf16: bool


def case_table(step_bf16: bool) -> dict[str, Case]:
    return {
        "infer-fp32": Case("infer-fp32", "base", 32, 128, train=False, bf16=False),
        "infer-bf16": Case("infer-bf16", "base", 32, 128, train=False, bf16=True),
        "step-mini": Case("step-mini", "mini", 32, 128, train=True, bf16=step_bf16),
        "step-base": Case("step-base", "base", 8, 128, train=True, bf16=step_bf16),
    }


# --------------------------------------------------------------------------- FLOPs
def forward_flops(cfg: BertConfig, batch: int, seq: int, masked: int | None) -> float:
    """Multiply-adds x 2 of one forward: encoder matmuls, attention, pooler, heads."""
    H, I, L, V = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers, cfg.vocab_size
    tokens = batch * seq
    per_token = L * (4 * H * H + 2 * H * I)  # QKV + attn-out + FFN in/out
    attn = L * batch * 2 * seq * seq * H  # QK^T and (probs)V
    flops = 2 * (per_token * tokens + attn + batch * H * H)  # + pooler
    if masked is not None:  # MLM transform + vocab projection at masked positions, NSP
        positions = batch * masked
        flops += 2 * (positions * (H * H + H * V) + batch * 2 * H)
    return float(flops)


# --------------------------------------------------------------------------- inputs and models
def make_inputs(cfg: BertConfig, c: Case, device: str, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    B, T = c.batch, c.seq
    ids = torch.randint(1000, cfg.vocab_size, (B, T), generator=g)
    ids[:, 0] = 101
    types = torch.zeros(B, T, dtype=torch.long)
    types[:, T // 2 :] = 1
    batch = {"input_ids": ids, "token_type_ids": types, "attention_mask": torch.ones(B, T, dtype=torch.long)}
    if c.train:
        # 20 distinct masked positions per sequence (not [CLS]), their labels, NSP labels.
        pos = torch.stack([torch.randperm(T - 1, generator=g)[:MASKED_PER_SEQ] + 1 for _ in range(B)])
        pos, _ = pos.sort(1)
        labels = torch.gather(ids, 1, pos)
        full = torch.full((B, T), -100, dtype=torch.long)
        full.scatter_(1, pos, labels)
        batch.update(
            masked_positions=pos,
            mlm_labels=labels,
            mlm_labels_full=full,
            nsp_labels=torch.randint(0, 2, (B,), generator=g),
        )
    return {k: v.to(device) for k, v in batch.items()}


def build_pair(cfg: BertConfig, train: bool, device: str):
    """bertkit and transformers models with identical weights."""
    import transformers

    torch.manual_seed(0)
    ours = (BertForPreTraining if train else BertModel)(cfg)
    hf_cls = transformers.BertForPreTraining if train else transformers.BertModel
    hf_cfg = transformers.BertConfig(**cfg.to_dict())
    hf_cfg._attn_implementation = "sdpa"
    theirs = hf_cls(hf_cfg)
    assert theirs.config._attn_implementation == "sdpa"
    missing, unexpected = theirs.load_state_dict(ours.state_dict(), strict=False)
    missing = [k for k in missing if "decoder" not in k and "position_ids" not in k]
    assert not missing and not unexpected, (missing, unexpected)
    ours.to(device).train(train)
    theirs.to(device).train(train)
    return ours, theirs


def step_fns(ours, theirs, batch, train: bool, bf16: bool, device: str):
    """One callable per implementation doing exactly one timed unit of work."""
    autocast = (lambda: torch.autocast(device, dtype=torch.bfloat16)) if bf16 else nullcontext
    ids, mask, types = batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]
    if not train:

        def infer(model, ours_side):
            def run():
                with torch.inference_mode(), autocast():
                    out = (
                        model(ids, mask, types)
                        if ours_side
                        else model(input_ids=ids, attention_mask=mask, token_type_ids=types)
                    )
                    return out[0]

            return run

        return infer(ours, True), infer(theirs, False)

    # The same optimizer for both: torch's fused AdamW kernel (CPU and CUDA).
    opt_ours = torch.optim.AdamW(ours.parameters(), lr=1e-4, weight_decay=0.01, fused=True)
    opt_theirs = torch.optim.AdamW(theirs.parameters(), lr=1e-4, weight_decay=0.01, fused=True)

    def ours_step():
        with autocast():
            out = ours(ids, mask, types, batch["masked_positions"])
            loss, _ = pretraining_loss(out, batch["mlm_labels"], batch["nsp_labels"])
        loss.backward()
        opt_ours.step()
        opt_ours.zero_grad(set_to_none=True)
        return loss

    def theirs_step():
        with autocast():
            out = theirs(
                input_ids=ids,
                attention_mask=mask,
                token_type_ids=types,
                labels=batch["mlm_labels_full"],
                next_sentence_label=batch["nsp_labels"],
            )
        out.loss.backward()
        opt_theirs.step()
        opt_theirs.zero_grad(set_to_none=True)
        return out.loss

    return ours_step, theirs_step


def timed(fn: Callable, device: str) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def run_case(c: Case, device: str, reps: int, warmup: int) -> dict:
    cfg = BertConfig.from_preset(c.preset)
    ours, theirs = build_pair(cfg, c.train, device)
    batch = make_inputs(cfg, c, device)
    f_ours, f_theirs = step_fns(ours, theirs, batch, c.train, c.bf16, device)
    check = None
    if not c.train:  # same weights, same inputs: the outputs must agree before timing counts
        check = (f_ours().float() - f_theirs().float()).abs().max().item()
    for _ in range(warmup):
        f_ours()
        f_theirs()
    t_ours, t_theirs = [], []
    for i in range(reps):  # interleaved, alternating who goes first
        pair = [(f_ours, t_ours), (f_theirs, t_theirs)]
        for fn, acc in pair if i % 2 == 0 else pair[::-1]:
            acc.append(timed(fn, device))
    flops = forward_flops(cfg, c.batch, c.seq, MASKED_PER_SEQ if c.train else None)
    flops *= 3 if c.train else 1
    res = {
        "case": c.name,
        "preset": c.preset,
        "batch": c.batch,
        "seq": c.seq,
        "precision": "bf16-autocast" if c.bf16 else "fp32",
        "flops": flops,
        "max_abs_diff": check,
    }
    for side, ts in (("bertkit", t_ours), ("transformers", t_theirs)):
        s = statistics.median(ts)
        res[side] = {
            "seconds": s,
            "times": ts,
            "seq_per_s": c.batch / s,
            "tok_per_s": c.batch * c.seq / s,
            "gflops": flops / s / 1e9,
        }
    res["ratio"] = res["transformers"]["seconds"] / res["bertkit"]["seconds"]
    del ours, theirs
    return res


def print_table(results: list[dict]) -> None:
    head = f"{'case':<11} {'prec':<14} {'impl':<13} {'s/call':>8} {'seq/s':>8} {'tok/s':>9} {'GFLOP/s':>8} {'ratio':>6}"
    print(head)
    print("-" * len(head))
    for r in results:
        for side in ("bertkit", "transformers"):
            m = r[side]
            ratio = f"{r['ratio']:.2f}x" if side == "bertkit" else ""
            print(
                f"{r['case']:<11} {r['precision']:<14} {side:<13} {m['seconds']:>8.3f} "
                f"{m['seq_per_s']:>8.1f} {m['tok_per_s']:>9.0f} {m['gflops']:>8.1f} {ratio:>6}"
            )


def machine(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name(0)
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            name = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{name}, {os.cpu_count()} cores"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma list of {', '.join(CASES)}")
    ap.add_argument("--reps", type=int, default=5, help="timed repetitions per implementation")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument(
        "--step-precision",
        choices=["fp32", "bf16"],
        default=None,
        help="pre-training steps in fp32 or bf16 autocast (default: fp32 on CPU, bf16 on CUDA)",
    )
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (CPU)")
    ap.add_argument("--json", help="also write the results to this JSON file")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    step_prec = args.step_precision or ("bf16" if args.device == "cuda" else "fp32")
    table = case_table(step_prec == "bf16")
    wanted = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in wanted if c not in table]
    if unknown:
        ap.error(f"unknown case(s) {unknown}; choose from {list(table)}")
    import transformers

    print(
        f"# torch {torch.__version__}, transformers {transformers.__version__}, "
        f"device {args.device} ({machine(args.device)}), threads {torch.get_num_threads()}, "
        f"reps {args.reps} (median), warmup {args.warmup}",
        flush=True,
    )
    results = []
    for name in wanted:
        results.append(run_case(table[name], args.device, args.reps, args.warmup))
        r = results[-1]
        diff = "" if r["max_abs_diff"] is None else f", outputs max|diff| {r['max_abs_diff']:.1e}"
        print(
            f"  {name}: bertkit {r['bertkit']['seconds']:.3f}s, transformers "
            f"{r['transformers']['seconds']:.3f}s, ratio {r['ratio']:.2f}x{diff}",
            file=sys.stderr,
            flush=True,
        )
    print_table(results)
    if args.json:
        meta = {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "device": args.device,
            "machine": machine(args.device),
            "threads": torch.get_num_threads(),
            "reps": args.reps,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        }
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "results": results}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
