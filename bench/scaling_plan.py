"""The full-size pre-training plan of docs/SCALING.md, computed from its inputs.

BERT-base and BERT-large with the paper's recipe (Devlin et al. 2018: 1M steps of 256 sequences,
90% at length 128 and 10% at 512, from a 3.3B-word corpus) on 1, 8 and 64 GPUs: tokens/s per
GPU, DDP gradient traffic per step against link bandwidth, wall-clock and GPU-hours, memory per
GPU, data preparation time and disk. Every input is a named constant below, marked MEASURED
(with where and how) or ASSUMED / DATASHEET (with its source); change one and re-run.

    python bench/scaling_plan.py                          # the tables of docs/SCALING.md
    python bench/scaling_plan.py --mfu 0.3 --gpu-mem-gb 80   # other assumptions
    python bench/scaling_plan.py --measure-prepare ../shared/data/corpus/news.jsonl \\
        --tokenizer ../shared/data/checkpoints/minilm-l6-uncased     # re-measure the prepare inputs
    python bench/scaling_plan.py --measure-loader DATA_DIR...          # loader sequences/CPU-s

The model FLOPs are bertkit's own MFU count (``bertkit.pretrain.bert_flops_fn``) and the
parameter counts come from building the models on the meta device, so the plan follows the code.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

# ---------------------------------------------------------------------------------------------
# inputs

# The paper's recipe (Devlin et al. 2018, section A.2).
STEPS = {128: 900_000, 512: 100_000}  # 90% / 10% of 1M steps
GLOBAL_BATCH = 256  # sequences per optimizer step
CORPUS_WORDS = 3.3e9  # BooksCorpus 800M + English Wikipedia 2,500M words
DUPE_FACTOR = 10  # create_pretraining_data.py's default, bertkit prepare's default
MAX_PREDICTIONS = {128: 20, 512: 77}  # bertkit prepare's defaults (the paper's phase 2 used 80)

# MEASURED, docs/PERFORMANCE.md "Model speed", NVIDIA H200, 2026-11-26: bench/model_speed.py
# step-base bf16 autocast, batch 8 x 128, 20 masked positions: one full training step
# (forward, MLM+NSP loss, backward, fused AdamW) at 40,984 tokens/s. Steps of 25 ms at batch 8
# are launch-bound: this is a floor, not what a GPU reaches at 32+ sequences per step.
H200_STEP_BASE_TOKENS_S = 40_984
H200_STEP_BASE_SHAPE = (8, 128, 20)  # batch, sequence length, masked positions
# ASSUMED: the fraction of peak a full-size BERT step reaches at >= 32 sequences of 128 per GPU
# (bf16, SDPA attention). Not measured by bertkit; pass --mfu to see the plan under another value.
ASSUMED_MFU = 0.30
# DATASHEET: H100/H200 SXM dense bf16 peak (bertkit's MFU peak, docs/TRAINING.md), memory.
PEAK_FLOPS = 989e12
GPU_MEM_GB = 141  # H200 SXM: 141 GB HBM3e

# DATASHEET link bandwidths, per GPU, one direction (bytes/s). A ring all-reduce moves
# 2 (N-1)/N x the gradient bytes through every GPU's slowest link.
LINKS = {
    # NVLink 4 on H100/H200 SXM: 900 GB/s per GPU, both directions together
    "NVLink (in a node)": 450e9,
    # InfiniBand NDR 400 Gb/s, one ConnectX-7 per GPU as in DGX H100/H200
    "InfiniBand NDR, 1 NIC/GPU": 50e9,
    # 100 Gb Ethernet shared by a node's 8 GPUs (a common cloud / on-prem fabric)
    "100 GbE per 8-GPU node": 12.5e9 / 8,
}

# MEASURED by --measure-prepare on 2026-12-01 23:33 UTC: the project's 2-core AMD EPYC VM, one
# worker, time.process_time of the whole in-process prepare (tokenizer threads included), input
# ../shared/data/corpus/news.jsonl (5.97 MB), MiniLM's uncased vocabulary, dupe_factor 10, NSP,
# static masking. The machine was shared (load average ~12 on 2 cores), which inflates CPU
# seconds: the quiet-machine measurement of record (docs/PERFORMANCE.md, 44 MB, 2 workers, seq
# 128) is 1.41 MB/CPU-s, 1.8x this figure, so the preparation hours below are an upper end.
PREPARE = {
    # seq: MB of raw text per CPU-second, output bytes per input MB, instances per input MB
    128: {"mb_per_cpu_s": 0.773, "out_bytes_per_mb": 8.76e6, "instances_per_mb": 24_429},
    512: {"mb_per_cpu_s": 0.808, "out_bytes_per_mb": 14.41e6, "instances_per_mb": 10_622},
}
BYTES_PER_WORD = 6.40  # MEASURED, same run: raw UTF-8 bytes per whitespace-separated word

GPUS = (1, 8, 64)
MODELS = ("base", "large")


# ---------------------------------------------------------------------------------------------
# model facts from bertkit itself


def model_facts(name: str) -> dict:
    """Parameters and per-sequence training FLOPs (bertkit's MFU count) of a preset."""
    import torch

    from bertkit.config import BertConfig
    from bertkit.heads import BertForPreTraining
    from bertkit.pretrain import bert_flops_fn

    cfg = BertConfig.from_preset(name, vocab_size=30522)
    with torch.device("meta"):
        model = BertForPreTraining(cfg)
    params = sum(p.numel() for p in model.parameters())
    flops = bert_flops_fn(cfg)

    def per_seq(t: int) -> float:
        batch = {"input_ids": torch.empty(1, t), "masked_positions": torch.empty(1, MAX_PREDICTIONS[t])}
        return flops(batch)

    return {
        "params": params,
        "layers": cfg.num_hidden_layers,
        "hidden": cfg.hidden_size,
        "flops_per_seq": {t: per_seq(t) for t in STEPS},
        "flops_fn": flops,
    }


def anchor_mfu() -> float:
    """MFU of the measured H200 base step (bertkit's FLOP count over the datasheet peak)."""
    import torch

    b, t, p = H200_STEP_BASE_SHAPE
    flops = model_facts("base")["flops_fn"]({"input_ids": torch.empty(b, t), "masked_positions": torch.empty(b, p)})
    return H200_STEP_BASE_TOKENS_S / (b * t) * flops / PEAK_FLOPS


# ---------------------------------------------------------------------------------------------
# the plan


def activation_bytes(layers: int, hidden: int, seqs: int, t: int, checkpointing: bool) -> float:
    """Activation memory of one micro-batch (Korthikanti et al. 2022, 'Reducing Activation
    Recomputation in Large Transformer Models', eq. 1: 34 s b h bytes per layer in 16-bit
    without the 5 a s^2 b attention-matrix term, which SDPA's fused kernels do not store).
    With activation checkpointing each layer keeps only its fp32 input (4 s b h bytes) and one
    layer's full activations exist at a time during the recomputation."""
    per_layer = 34.0 * t * seqs * hidden
    if checkpointing:
        return layers * 4.0 * t * seqs * hidden + per_layer
    return layers * per_layer


def plan(mfu: float, gpu_mem_gb: float) -> dict:
    rows = []
    for name in MODELS:
        m = model_facts(name)
        grad_bytes = 4.0 * m["params"]  # DDP all-reduces fp32 gradients (weights stay fp32 under autocast)
        static = 16.0 * m["params"]  # fp32 weights + grads + two AdamW moments
        for t, steps in STEPS.items():
            tok_s = mfu * PEAK_FLOPS / (m["flops_per_seq"][t] / t)
            for n in GPUS:
                per_gpu = GLOBAL_BATCH // n
                compute_s = per_gpu * m["flops_per_seq"][t] / (mfu * PEAK_FLOPS)
                ring = 2.0 * (n - 1) / n * grad_bytes
                comm = {}
                for link, bw in LINKS.items():
                    if n == 1 or (n <= 8 and link != "NVLink (in a node)") or (n > 8 and link.startswith("NVLink")):
                        continue
                    comm[link] = ring / bw
                # micro-batch: the largest power of two <= per_gpu whose activations fit
                fits = {}
                for ckpt in (False, True):
                    micro = per_gpu
                    while micro > 1 and static + activation_bytes(m["layers"], m["hidden"], micro, t, ckpt) > (
                        gpu_mem_gb * 1e9 * 0.9
                    ):
                        micro //= 2
                    act = activation_bytes(m["layers"], m["hidden"], micro, t, ckpt)
                    fits[ckpt] = (micro, (static + act) / 1e9)
                best_comm = min(comm.values()) if comm else 0.0
                rows.append(
                    {
                        "model": name,
                        "params": m["params"],
                        "seq": t,
                        "steps": steps,
                        "gpus": n,
                        "seqs_per_gpu": per_gpu,
                        "tokens_s_per_gpu": tok_s,
                        "compute_s": compute_s,
                        "grad_mb": grad_bytes / 1e6,
                        "ring_mb_per_gpu": ring / 1e6,
                        "comm_s": comm,
                        "step_s_overlap": max(compute_s, best_comm),
                        "step_s_serial": compute_s + best_comm,
                        "static_gb": static / 1e9,
                        "micro_no_ckpt": fits[False],
                        "micro_ckpt": fits[True],
                    }
                )
    return {"mfu": mfu, "rows": rows}


def data_plan(cores: tuple[int, ...] = (16, 64, 512)) -> list[dict]:
    text_mb = CORPUS_WORDS * BYTES_PER_WORD / 1e6
    out = []
    for t in STEPS:
        p = PREPARE[t]
        cpu_h = text_mb / p["mb_per_cpu_s"] / 3600
        out.append(
            {
                "seq": t,
                "text_gb": text_mb / 1e3,
                "cpu_hours": cpu_h,
                "wall_h": {c: cpu_h / c for c in cores},
                "disk_gb": text_mb * p["out_bytes_per_mb"] / 1e9,
                "instances": text_mb * p["instances_per_mb"],
                "epochs": STEPS[t] * GLOBAL_BATCH / (text_mb * p["instances_per_mb"]),
            }
        )
    return out


# ---------------------------------------------------------------------------------------------
# output


def fmt_time(s: float) -> str:
    if s < 1:
        return f"{s * 1e3:.1f} ms"
    if s < 600:
        return f"{s:.1f} s"
    h = s / 3600
    return f"{h:.1f} h" if h < 48 else f"{h / 24:.1f} d"


def _wall(rows: list[dict], name: str, n: int) -> tuple[dict, float, float]:
    sel = [r for r in rows if r["model"] == name and r["gpus"] == n]
    phases = {r["seq"]: r["steps"] * r["step_s_overlap"] for r in sel}
    serial = sum(r["steps"] * r["step_s_serial"] for r in sel)
    return phases, sum(phases.values()), serial


def print_tables(p: dict, floor: dict, gpu_mem_gb: float) -> None:
    rows = p["rows"]
    print(
        f"Full-size steps at the ASSUMED MFU {p['mfu']:.0%} of {PEAK_FLOPS / 1e12:.0f} TFLOP/s; the MEASURED floor is"
    )
    print(f"the H200 base step at batch 8 x 128: {H200_STEP_BASE_TOKENS_S:,} tokens/s = MFU {floor['mfu']:.1%}.\n")
    print("### Throughput and step time (per phase)\n")
    print(
        "| model | params | seq | GPUs | seqs/GPU/step | tokens/s/GPU | compute/step | "
        "grad all-reduce per GPU | comm/step by link | step (overlap .. serial) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        comm = "; ".join(f"{k}: {fmt_time(v)}" for k, v in r["comm_s"].items()) or "none"
        print(
            f"| {r['model']} | {r['params'] / 1e6:.0f}M | {r['seq']} | {r['gpus']} | {r['seqs_per_gpu']} | "
            f"{r['tokens_s_per_gpu']:,.0f} | {fmt_time(r['compute_s'])} | {r['ring_mb_per_gpu']:,.0f} MB | {comm} | "
            f"{fmt_time(r['step_s_overlap'])} .. {fmt_time(r['step_s_serial'])} |"
        )
    print("\n### Wall-clock and GPU-hours (both phases, fastest link, communication overlapped with compute)\n")
    print(
        f"| model | GPUs | phase 128 | phase 512 | total | GPU-hours | total, no overlap | "
        f"total at the measured floor ({floor['mfu']:.1%} MFU) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in MODELS:
        for n in GPUS:
            phases, total, serial = _wall(rows, name, n)
            _, floor_total, _ = _wall(floor["rows"], name, n)
            print(
                f"| {name} | {n} | {fmt_time(phases[128])} | {fmt_time(phases[512])} | {fmt_time(total)} | "
                f"{n * total / 3600:,.0f} | {fmt_time(serial)} | {fmt_time(floor_total)} |"
            )
    print(f"\n### Memory per GPU ({gpu_mem_gb:.0f} GB, 90% usable; fp32 weights + grads + AdamW = 16 B/param)\n")
    print(
        "| model | seq | GPUs | seqs/GPU/step | weights+optimizer | largest micro-batch (GB), no checkpointing "
        "| with activation checkpointing |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        (m0, g0), (m1, g1) = r["micro_no_ckpt"], r["micro_ckpt"]
        print(
            f"| {r['model']} | {r['seq']} | {r['gpus']} | {r['seqs_per_gpu']} | {r['static_gb']:.1f} GB | "
            f"{m0} ({g0:.0f} GB), grad_accum {r['seqs_per_gpu'] // m0} | "
            f"{m1} ({g1:.0f} GB), grad_accum {r['seqs_per_gpu'] // m1} |"
        )
    print(
        f"\n### Data preparation ({CORPUS_WORDS / 1e9:.1f}B words x {BYTES_PER_WORD:.2f} bytes/word, "
        f"dupe_factor {DUPE_FACTOR})\n"
    )
    print("| seq | raw text | CPU-hours | wall on 16 / 64 / 512 cores | disk | instances | epochs the steps use |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for d in data_plan():
        walls = " / ".join(fmt_time(v * 3600) for v in d["wall_h"].values())
        print(
            f"| {d['seq']} | {d['text_gb']:.1f} GB | {d['cpu_hours']:,.0f} | {walls} | {d['disk_gb']:,.0f} GB | "
            f"{d['instances'] / 1e6:,.0f}M | {d['epochs']:.2f} |"
        )


# ---------------------------------------------------------------------------------------------
# measuring the prepare inputs


def measure_prepare(inputs: list[str], tokenizer: str) -> dict:
    """CPU seconds, output bytes and instances per input MB of ``bertkit prepare`` (one
    in-process worker, so ``time.process_time`` is the whole cost), and bytes per word."""
    from bertkit.corpus import expand_inputs, iter_documents
    from bertkit.pretraining.format import PrepareOptions
    from bertkit.pretraining.prepare import prepare

    paths = expand_inputs(inputs)
    mb = sum(p.stat().st_size for p in paths) / 1e6
    words = nbytes = 0
    for doc in iter_documents(paths, "auto"):
        words += sum(len(line.split()) for line in doc.lines)
        nbytes += doc.nbytes
    result = {"inputs": [str(p) for p in paths], "mb": mb, "bytes_per_word": nbytes / words, "seq": {}}
    for t in STEPS:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "out"
            c0, w0 = time.process_time(), time.perf_counter()
            manifest = prepare(
                paths,
                tokenizer,
                out,
                PrepareOptions(max_seq_length=t, dupe_factor=DUPE_FACTOR),
                workers=1,
                progress=False,
            )
            cpu, wall = time.process_time() - c0, time.perf_counter() - w0
            size = sum(f.stat().st_size for f in out.iterdir())
            inst = sum(manifest["counts"]["instances"].values())
        result["seq"][t] = {
            "cpu_s": cpu,
            "wall_s": wall,
            "mb_per_cpu_s": mb / cpu,
            "out_bytes_per_mb": size / mb,
            "instances_per_mb": inst / mb,
        }
        print(json.dumps({"seq": t, **result["seq"][t]}), file=sys.stderr)
    return result


def measure_loader(data_dirs: list[str], seconds: float = 3.0) -> list[dict]:
    """Sequences per CPU-second ``PretrainingLoader`` delivers (in the training loop's thread,
    as the Trainer uses it) at batch 32 and 256."""
    from bertkit.pretraining.loader import PretrainingLoader

    out = []
    for d in data_dirs:
        for batch_size in (32, 256):
            it = iter(PretrainingLoader(d, batch_size=batch_size, seed=0))
            next(it)
            c0, n = time.process_time(), 0
            while time.process_time() - c0 < seconds:
                next(it)
                n += 1
            row = {"data": d, "batch_size": batch_size, "seq_per_cpu_s": n * batch_size / (time.process_time() - c0)}
            print(json.dumps(row), file=sys.stderr)
            out.append(row)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mfu", type=float, default=ASSUMED_MFU, help="fraction of peak a full-size step reaches")
    ap.add_argument("--gpu-mem-gb", type=float, default=GPU_MEM_GB)
    ap.add_argument("--measure-prepare", nargs="+", metavar="INPUT", help="measure prepare on these inputs instead")
    ap.add_argument("--tokenizer", help="vocabulary directory for --measure-prepare")
    ap.add_argument("--measure-loader", nargs="+", metavar="DATA_DIR", help="measure the loader on prepared data")
    args = ap.parse_args(argv)
    if args.measure_loader:
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        print(json.dumps(measure_loader(args.measure_loader), indent=2))
        return 0
    if args.measure_prepare:
        if not args.tokenizer:
            ap.error("--measure-prepare needs --tokenizer")
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        print(json.dumps(measure_prepare(args.measure_prepare, args.tokenizer), indent=2))
        return 0
    if not 0 < args.mfu <= 1:
        ap.error("--mfu must be in (0, 1]")
    floor = anchor_mfu()
    print_tables(plan(args.mfu, args.gpu_mem_gb), plan(floor, args.gpu_mem_gb), args.gpu_mem_gb)
    return 0


if __name__ == "__main__":
    sys.exit(main())
