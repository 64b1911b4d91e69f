"""Embedding throughput: bertkit vs sentence-transformers vs transformers' feature-extraction pipeline.

Same texts, same model, same precision, in one process, measured in interleaved rounds (each
round runs every side once; the best round of each side counts, so a burst of load from other
jobs on a shared machine hurts no side more than another). Texts: real variable-length text from
the shared corpus, half sentences (corpus/sample.txt) and half paragraphs (corpus/*.jsonl, >= 8
words), seeded. Every side truncates at 512 tokens, mean-pools over real tokens and L2-normalises.

Sides:
* bertkit: ``bertkit.load(dir, precision=P).embed(texts, normalize=True)`` (length-sorted
  token-budget batches, inference mode);
* sentence-transformers: ``SentenceTransformer(dir).encode(texts, normalize_embeddings=True,
  batch_size=32)`` (its default batch size; it sorts by character length);
* transformers: ``pipeline("feature-extraction", batch_size=32)``, mean-pooled and normalised
  here (the pipeline returns per-token states).
bf16 runs every side under ``torch.autocast("cpu", torch.bfloat16)`` (bertkit: ``precision="bf16"``).

Models: ``minilm`` (the shared all-MiniLM-L6-v2 checkpoint) and ``base`` (BERT-base shapes,
random weights with MiniLM's vocabulary: speed does not depend on the values).

Reported per side: texts/s and tokens/s from wall time and from the process's CPU time (with
``--threads 1``, CPU time is the work done, unaffected by other jobs taking the core), useful
GFLOP/s (matmul + attention FLOPs of the real tokens, padding not counted) and that as a fraction
of this CPU's measured fp32 GEMM peak (a 1024^3 matmul, same threads, best of the run), the
bertkit / peer ratios, the maximum difference to sentence-transformers' fp32 embeddings and the
bf16 embeddings' cosine to fp32.

    python bench/inference_speed.py                       # 10,000 texts, minilm + base, fp32 + bf16
    python bench/inference_speed.py --quick               # a few minutes
    python bench/inference_speed.py --texts 2000 --base-texts 300 --bf16-texts 200 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
SHARED = Path(os.environ.get("BERTKIT_SHARED_DATA", REPO.parent / "shared" / "data"))
MINILM = SHARED / "checkpoints" / "minilm-l6-uncased"
MAX_LENGTH = 512


def corpus_texts(n: int, seed: int = 0) -> list[str]:
    """``n`` texts: half sentences of sample.txt, half paragraphs of the jsonl corpora, shuffled."""
    rng = random.Random(seed)
    sample = SHARED / "corpus" / "sample.txt"
    sentences = [x.strip() for x in sample.read_text("utf-8").splitlines() if x.strip()]
    paragraphs = []
    for name in ("wiki", "books", "news"):
        with open(SHARED / "corpus" / f"{name}.jsonl", encoding="utf-8") as f:
            for line in f:
                paragraphs += [p for p in json.loads(line)["text"].split("\n") if len(p.split()) >= 8]
    k = n // 2
    texts = [rng.choice(sentences) for _ in range(k)] + [rng.choice(paragraphs) for _ in range(n - k)]
    rng.shuffle(texts)
    return texts


def base_dir(tmp: Path) -> Path:
    """BERT-base shapes (12 x 768, 12 heads, 3072), random weights, MiniLM's vocabulary."""
    from bertkit.config import BertConfig
    from bertkit.model import BertModel
    from bertkit.tokenization import Tokenizer

    tok = Tokenizer.from_pretrained(MINILM)
    torch.manual_seed(0)
    d = tmp / "bert-base-random"
    BertModel(BertConfig.from_preset("base", vocab_size=len(tok))).save_pretrained(d, tokenizer=tok)
    return d


def useful_flops(lengths: list[int], cfg) -> float:
    """Forward FLOPs on the real tokens: the encoder's matmuls (2 x params x tokens) plus
    attention scores and mixing (2 x 2 x T^2 x H per layer)."""
    H, I, L = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    per_token = 2 * (4 * H * H + 2 * H * I)
    t = np.asarray(lengths, dtype=np.float64)
    return float(L * (per_token * t.sum() + 4 * H * (t**2).sum()))


def gemm_peak(threads: int) -> float:
    """Best fp32 FLOP/s of a 1024^3 matmul by CPU time (best of 10)."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(1024, 1024, generator=g), torch.randn(1024, 1024, generator=g)
    best = float("inf")
    for _ in range(10):
        t0 = time.process_time()
        a @ b
        best = min(best, time.process_time() - t0)
    return 2 * 1024**3 / best / threads


def autocast(precision: str):
    import contextlib

    return torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()


def make_sides(directory: Path, precision: str) -> dict:
    """name -> function(texts) -> normalised float32 embeddings (N, H)."""
    import transformers
    from sentence_transformers import SentenceTransformer

    import bertkit

    transformers.logging.set_verbosity_error()
    bk = bertkit.load(directory, device="cpu", precision=precision, max_length=MAX_LENGTH)
    st = SentenceTransformer(str(directory), device="cpu")
    st.max_seq_length = MAX_LENGTH
    tok = transformers.AutoTokenizer.from_pretrained(str(directory))
    pipe = transformers.pipeline(
        "feature-extraction",
        model=transformers.AutoModel.from_pretrained(str(directory)),
        tokenizer=tok,
        device="cpu",
        tokenize_kwargs={"truncation": True, "max_length": MAX_LENGTH},
    )

    def run_bertkit(texts):
        return bk.embed(texts, pooling="mean", normalize=True)

    def run_st(texts):
        with autocast(precision):
            return st.encode(texts, normalize_embeddings=True, batch_size=32, convert_to_numpy=True).astype(np.float32)

    def run_hf(texts):
        # the pipeline returns each text's states padded to its batch's length: mean over its real tokens
        lengths = [len(ids) for ids in tok(texts, truncation=True, max_length=MAX_LENGTH)["input_ids"]]
        out = []
        with autocast(precision):
            for states, n in zip(pipe(texts, batch_size=32, return_tensors=True), lengths):
                v = states[0, :n].float().mean(0)  # (H,)
                out.append((v / v.norm().clamp_min(1e-12)).numpy())
        return np.stack(out)

    return {"bertkit": run_bertkit, "sentence-transformers": run_st, "transformers-pipeline": run_hf}


def measure(model_name: str, directory: Path, precision: str, texts: list[str], rounds: int, threads: int) -> dict:
    from bertkit.config import BertConfig
    from bertkit.tokenization import Tokenizer

    cfg = BertConfig.from_pretrained(directory)
    lengths = [min(len(ids) + 2, MAX_LENGTH) for ids in Tokenizer.from_pretrained(directory).tokenize_ids_batch(texts)]
    flops = useful_flops(lengths, cfg)
    sides = make_sides(directory, precision)
    for fn in sides.values():  # warm-up (allocator, kernels, lazy imports)
        fn(texts[:8])
    best: dict[str, dict] = {}
    outputs: dict[str, np.ndarray] = {}
    for r in range(rounds):
        order = list(sides) if r % 2 == 0 else list(sides)[::-1]  # interleaved, alternating order
        for name in order:
            t_cpu, t_wall = time.process_time(), time.perf_counter()
            out = sides[name](texts)
            cpu, wall = time.process_time() - t_cpu, time.perf_counter() - t_wall
            outputs[name] = out
            prev = best.get(name)
            if prev is None or cpu < prev["cpu_s"]:
                best[name] = {"cpu_s": cpu, "wall_s": wall}
            print(
                f"  {model_name} {precision} round {r + 1}: {name:22s} cpu {cpu:8.2f} s  wall {wall:8.2f} s", flush=True
            )
    for b in best.values():
        b["texts_per_s_cpu"] = len(texts) / b["cpu_s"] * threads
        b["texts_per_s_wall"] = len(texts) / b["wall_s"]
        b["tokens_per_s_cpu"] = sum(lengths) / b["cpu_s"] * threads
        b["gflops_cpu"] = flops / b["cpu_s"] / 1e9
    return {
        "model": model_name,
        "precision": precision,
        "texts": len(texts),
        "tokens": int(sum(lengths)),
        "mean_tokens": float(np.mean(lengths)),
        "max_tokens": int(max(lengths)),
        "flops": flops,
        "sides": best,
        "outputs": outputs,
    }


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--texts", type=int, default=10_000, help="texts for MiniLM fp32 (default 10,000)")
    ap.add_argument("--base-texts", type=int, default=None, help="texts for BERT-base (default: --texts)")
    ap.add_argument("--bf16-texts", type=int, default=None, help="texts for bf16 runs (default: as fp32)")
    ap.add_argument("--models", default="minilm,base")
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1: stable CPU time)")
    ap.add_argument("--quick", action="store_true", help="300 MiniLM / 60 base / 60 bf16 texts, 2 rounds")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()
    if args.quick:
        args.texts, args.base_texts, args.bf16_texts, args.rounds = 300, 60, 60, 2
    if not MINILM.is_dir():
        sys.exit(f"shared data not found: {MINILM} (set BERTKIT_SHARED_DATA)")
    torch.set_num_threads(args.threads)
    from bertkit.inference import native_bf16

    print(f"torch {torch.__version__}, {args.threads} thread(s), native bf16: {native_bf16(torch.device('cpu'))}")
    all_texts = corpus_texts(max(args.texts, args.base_texts or 0, args.bf16_texts or 0))
    results, peak = [], 0.0
    with tempfile.TemporaryDirectory() as tmp:
        dirs = {"minilm": MINILM}
        if "base" in args.models:
            dirs["base"] = base_dir(Path(tmp))
        for model_name in args.models.split(","):
            fp32_out = None
            for precision in args.precisions.split(","):
                n = args.texts if model_name == "minilm" else (args.base_texts or args.texts)
                if precision == "bf16" and args.bf16_texts:
                    n = min(n, args.bf16_texts)
                peak = max(peak, gemm_peak(args.threads))
                res = measure(model_name, dirs[model_name], precision, all_texts[:n], args.rounds, args.threads)
                peak = max(peak, gemm_peak(args.threads))
                ref = res["outputs"]["sentence-transformers"]
                bk = res["outputs"]["bertkit"]
                res["max_abs_diff_vs_st"] = float(np.abs(bk - ref).max())
                res["min_cosine_vs_st"] = float(cosine_rows(bk, ref).min())
                if precision == "fp32":
                    fp32_out = {k: v for k, v in res["outputs"].items()}
                    fp32_res = res
                elif fp32_out is not None:
                    res["bf16_cosine_vs_fp32"] = {
                        k: {
                            "min": float(cosine_rows(v, fp32_out[k][:n]).min()),
                            "mean": float(cosine_rows(v, fp32_out[k][:n]).mean()),
                        }
                        for k, v in res["outputs"].items()
                    }
                    st32 = fp32_res["sides"]["sentence-transformers"]["cpu_s"] / fp32_res["texts"]
                    res["bertkit_bf16_vs_st_fp32"] = st32 / (res["sides"]["bertkit"]["cpu_s"] / n)
                del res["outputs"]
                results.append(res)
    print(f"\nfp32 GEMM peak (1024^3 matmul, by CPU time, per thread): {peak / 1e9:.1f} GFLOP/s")
    print(
        f"{'model':7s} {'prec':5s} {'texts':>6s} {'side':22s} {'texts/s':>8s} {'tok/s':>8s} {'GFLOP/s':>8s} "
        f"{'of peak':>7s} {'vs bk':>6s}"
    )
    for r in results:
        bk = r["sides"]["bertkit"]
        for name, s in r["sides"].items():
            ratio = s["cpu_s"] / bk["cpu_s"]
            print(
                f"{r['model']:7s} {r['precision']:5s} {r['texts']:6d} {name:22s} {s['texts_per_s_cpu']:8.1f} "
                f"{s['tokens_per_s_cpu']:8.0f} {s['gflops_cpu']:8.1f} {s['gflops_cpu'] * 1e9 / peak:7.1%} "
                f"{'' if name == 'bertkit' else f'{ratio:5.2f}x'}"
            )
        extra = f"  bertkit vs sentence-transformers: max |diff| {r['max_abs_diff_vs_st']:.2e}, min cosine {r['min_cosine_vs_st']:.6f}"
        if "bf16_cosine_vs_fp32" in r:
            c = r["bf16_cosine_vs_fp32"]
            extra += "; bf16 vs own fp32 cosine min " + ", ".join(f"{k} {v['min']:.5f}" for k, v in c.items())
            extra += f"; bertkit bf16 = {r['bertkit_bf16_vs_st_fp32']:.2f}x sentence-transformers fp32"
        print(extra)
    print("(texts/s, tok/s, GFLOP/s from CPU time x threads; 'vs bk' = side's time / bertkit's: >1 = bertkit faster)")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"peak_flops": peak, "threads": args.threads, "results": results}, indent=2)
        )


if __name__ == "__main__":
    main()
