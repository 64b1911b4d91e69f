"""Tokenizer speed: bertkit vs transformers' fast and slow BertTokenizer, and vocabulary training
time vs tokenizers' own WordPiece trainer. Same text, same vocabulary, one run.

    .venv/bin/python bench/tokenizer_speed.py                 # 4 MB slice of the corpus
    .venv/bin/python bench/tokenizer_speed.py --mb 0          # whole corpus (slow tokenizer: minutes)

Encoding: every paragraph line of ../shared/data/corpus/*.jsonl (interleaved across the files,
deterministically) up to --mb megabytes of UTF-8, encoded with [CLS]/[SEP] and no truncation.
"single" calls the tokenizer once per text; "batched" passes --batch-size texts per call.
Vocabulary training: a 30k vocabulary on the whole corpus (all files of ../shared/data/corpus),
bertkit's ``train_vocab`` vs a ``tokenizers`` WordPieceTrainer with the stock BERT normalizer and
pre-tokenizer (HF's BertWordPieceTokenizer recipe), both streaming the same files.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from itertools import zip_longest
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BERTKIT_SHARED_DATA", REPO.parent / "shared" / "data"))
MODEL = SHARED / "checkpoints" / "minilm-l6-uncased"


def corpus_texts(limit_bytes: int) -> list[str]:
    """Paragraph lines of the corpus JSONL files, round-robin across files, up to limit_bytes."""
    per_file = []
    for f in sorted((SHARED / "corpus").glob("*.jsonl")):
        lines = []
        for row in f.read_text(encoding="utf-8").splitlines():
            lines.extend(p for p in json.loads(row)["text"].split("\n") if p.strip())
        per_file.append(lines)
    out, size = [], 0
    for group in zip_longest(*per_file):
        for t in group:
            if t is None:
                continue
            out.append(t)
            size += len(t.encode("utf-8"))
            if limit_bytes and size >= limit_bytes:
                return out
    return out


def timed(fn) -> tuple[float, int]:
    start = time.perf_counter()
    n_tokens = fn()
    return time.perf_counter() - start, n_tokens


def batches(texts, size):
    for i in range(0, len(texts), size):
        yield texts[i : i + size]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=4.0, help="MB of corpus text to encode (0 = all)")
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--skip-slow", action="store_true", help="leave out the slow Python tokenizer")
    ap.add_argument("--skip-training", action="store_true", help="leave out vocabulary training")
    args = ap.parse_args()

    import tokenizers
    import transformers

    from bertkit.tokenization import Tokenizer, iter_texts, train_vocab

    logging.getLogger("transformers").setLevel(logging.ERROR)
    transformers.logging.set_verbosity_error()
    texts = corpus_texts(int(args.mb * 1e6))
    mbytes = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
        f"python {platform.python_version()}, tokenizers {tokenizers.__version__}, "
        f"transformers {transformers.__version__}"
    )
    print(f"text: {len(texts)} paragraphs, {mbytes:.2f} MB; vocab {MODEL.name}; batch {args.batch_size}")

    ours = Tokenizer.from_pretrained(MODEL)
    fast = transformers.BertTokenizerFast.from_pretrained(str(MODEL))
    slow_cls = getattr(transformers, "BertTokenizerLegacy", None) or transformers.BertTokenizer
    slow = slow_cls.from_pretrained(str(MODEL))
    bs = args.batch_size

    runs = {
        ("bertkit", "single"): lambda: sum(len(ours.encode(t).input_ids) for t in texts),
        ("bertkit", "batched"): lambda: sum(len(e.input_ids) for b in batches(texts, bs) for e in ours.encode_batch(b)),
        ("bertkit", "ids only"): lambda: sum(
            len(x) + 2 for b in batches(texts, bs) for x in ours.tokenize_ids_batch(b)
        ),
        ("hf fast", "single"): lambda: sum(len(fast(t)["input_ids"]) for t in texts),
        ("hf fast", "batched"): lambda: sum(len(x) for b in batches(texts, bs) for x in fast(b)["input_ids"]),
    }
    if not args.skip_slow:
        runs[("hf slow", "single")] = lambda: sum(len(slow(t)["input_ids"]) for t in texts)
        runs[("hf slow", "batched")] = lambda: sum(len(x) for b in batches(texts, bs) for x in slow(b)["input_ids"])
    results = {}
    for key, fn in runs.items():
        seconds, n_tokens = timed(fn)
        results[key] = (seconds, n_tokens)
        print(
            f"{key[0]:8s} {key[1]:8s} {seconds:8.2f} s {mbytes / seconds:8.2f} MB/s "
            f"{n_tokens / seconds / 1e3:9.1f} k tokens/s",
            flush=True,
        )
    counts = {n for _, n in results.values()}
    print(f"token counts agree: {len(counts) == 1} ({sorted(counts)})")
    for mode in ("single", "batched"):
        ours_s = results[("bertkit", mode)][0]
        line = f"{mode}: bertkit is {results[('hf fast', mode)][0] / ours_s:.2f}x hf fast"
        if ("hf slow", mode) in results:
            line += f", {results[('hf slow', mode)][0] / ours_s:.1f}x hf slow"
        print(line)

    if args.skip_training:
        return
    files = sorted((SHARED / "corpus").iterdir())
    start = time.perf_counter()
    tok = train_vocab(files, vocab_size=30000, progress=False)
    ours_train = time.perf_counter() - start
    print(
        f"train_vocab 30k on {len(files)} corpus files: {ours_train:.1f} s "
        f"(pieces/word {tok.training_report.pieces_per_word:.3f}, "
        f"[UNK] rate {tok.training_report.unk_rate:.5f})"
    )
    from tokenizers import Tokenizer as RustTokenizer
    from tokenizers import models, normalizers, pre_tokenizers, trainers

    stock = RustTokenizer(models.WordPiece(unk_token="[UNK]"))
    stock.normalizer = normalizers.BertNormalizer(lowercase=True)
    stock.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=30000,
        min_frequency=2,
        limit_alphabet=1000,
        special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
        show_progress=False,
    )
    start = time.perf_counter()
    stock.train_from_iterator(iter_texts(files), trainer)
    stock_train = time.perf_counter() - start
    print(
        f"tokenizers WordPieceTrainer (stock BERT pipeline), same files: {stock_train:.1f} s "
        f"-> bertkit/stock time ratio {ours_train / stock_train:.2f}"
    )


if __name__ == "__main__":
    main()
