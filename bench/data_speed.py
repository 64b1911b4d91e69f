"""Throughput (MB of raw text per second) and peak RSS of ``bertkit prepare`` against a straight
single-process port of Google's ``create_pretraining_data.py`` (written below as the reference).

    python bench/data_speed.py                       # full ../shared/data/corpus, both sides
    python bench/data_speed.py --only ours --synthetic-gb 1   # ours on a >= 1 GB repeated corpus

Each side runs in its own child process; the parent samples the summed RSS of the child and all
its descendants (worker processes included) every 50 ms from /proc. Both sides read the same
documents (bertkit.corpus: JSONL/BERT format, the same sentence segmenter), so the comparison is
of tokenizing + instance building + masking + writing; the reference does it the original way:
pure-Python FullTokenizer, every document in RAM, per-instance Python masking, one process.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import unicodedata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BERTKIT_SHARED_DATA", REPO.parent / "shared" / "data"))


# =============================================================================================
# reference: a straight port of google-research/bert create_pretraining_data.py + tokenization.py


def _is_whitespace(c):
    if c in " \t\n\r":
        return True
    return unicodedata.category(c) == "Zs"


def _is_control(c):
    if c in "\t\n\r":
        return False
    return unicodedata.category(c) in ("Cc", "Cf")


def _is_punctuation(c):
    cp = ord(c)
    if (33 <= cp <= 47) or (58 <= cp <= 64) or (91 <= cp <= 96) or (123 <= cp <= 126):
        return True
    return unicodedata.category(c).startswith("P")


class BasicTokenizer:
    def __init__(self, do_lower_case=True):
        self.do_lower_case = do_lower_case

    def tokenize(self, text):
        text = self._clean_text(text)
        text = self._tokenize_chinese_chars(text)
        orig_tokens = text.strip().split()
        split_tokens = []
        for token in orig_tokens:
            if self.do_lower_case:
                token = token.lower()
                token = self._run_strip_accents(token)
            split_tokens.extend(self._run_split_on_punc(token))
        return " ".join(split_tokens).strip().split()

    def _run_strip_accents(self, text):
        text = unicodedata.normalize("NFD", text)
        return "".join(c for c in text if unicodedata.category(c) != "Mn")

    def _run_split_on_punc(self, text):
        chars = list(text)
        i, start_new_word, output = 0, True, []
        while i < len(chars):
            char = chars[i]
            if _is_punctuation(char):
                output.append([char])
                start_new_word = True
            else:
                if start_new_word:
                    output.append([])
                start_new_word = False
                output[-1].append(char)
            i += 1
        return ["".join(x) for x in output]

    def _tokenize_chinese_chars(self, text):
        output = []
        for char in text:
            cp = ord(char)
            if self._is_chinese_char(cp):
                output += [" ", char, " "]
            else:
                output.append(char)
        return "".join(output)

    def _is_chinese_char(self, cp):
        return (
            (0x4E00 <= cp <= 0x9FFF)
            or (0x3400 <= cp <= 0x4DBF)
            or (0x20000 <= cp <= 0x2A6DF)
            or (0x2A700 <= cp <= 0x2B73F)
            or (0x2B740 <= cp <= 0x2B81F)
            or (0x2B820 <= cp <= 0x2CEAF)
            or (0xF900 <= cp <= 0xFAFF)
            or (0x2F800 <= cp <= 0x2FA1F)
        )

    def _clean_text(self, text):
        output = []
        for char in text:
            cp = ord(char)
            if cp == 0 or cp == 0xFFFD or _is_control(char):
                continue
            output.append(" " if _is_whitespace(char) else char)
        return "".join(output)


class WordpieceTokenizer:
    def __init__(self, vocab, unk_token="[UNK]", max_input_chars_per_word=200):
        self.vocab, self.unk_token, self.max_chars = vocab, unk_token, max_input_chars_per_word

    def tokenize(self, text):
        output_tokens = []
        for token in text.strip().split():
            chars = list(token)
            if len(chars) > self.max_chars:
                output_tokens.append(self.unk_token)
                continue
            is_bad, start, sub_tokens = False, 0, []
            while start < len(chars):
                end, cur_substr = len(chars), None
                while start < end:
                    substr = "".join(chars[start:end])
                    if start > 0:
                        substr = "##" + substr
                    if substr in self.vocab:
                        cur_substr = substr
                        break
                    end -= 1
                if cur_substr is None:
                    is_bad = True
                    break
                sub_tokens.append(cur_substr)
                start = end
            output_tokens.extend([self.unk_token] if is_bad else sub_tokens)
        return output_tokens


class FullTokenizer:
    def __init__(self, vocab_file, do_lower_case=True):
        self.vocab = collections.OrderedDict()
        with open(vocab_file, encoding="utf-8") as f:
            for index, line in enumerate(f):
                self.vocab[line.rstrip("\n")] = index
        self.inv_vocab = {v: k for k, v in self.vocab.items()}
        self.basic = BasicTokenizer(do_lower_case)
        self.wordpiece = WordpieceTokenizer(self.vocab)

    def tokenize(self, text):
        out = []
        for token in self.basic.tokenize(text):
            out.extend(self.wordpiece.tokenize(token))
        return out

    def convert_tokens_to_ids(self, tokens):
        return [self.vocab[t] for t in tokens]


class TrainingInstance:
    def __init__(self, tokens, segment_ids, masked_lm_positions, masked_lm_labels, is_random_next):
        self.tokens, self.segment_ids, self.is_random_next = tokens, segment_ids, is_random_next
        self.masked_lm_positions, self.masked_lm_labels = masked_lm_positions, masked_lm_labels


MaskedLmInstance = collections.namedtuple("MaskedLmInstance", ["index", "label"])


def create_training_instances(
    documents, tokenizer, max_seq_length, dupe_factor, short_seq_prob, masked_lm_prob, max_predictions_per_seq, rng
):
    all_documents = [[]]
    for sentences in documents:  # the original reads "one sentence per line, blank line = new doc"
        for line in sentences:
            tokens = tokenizer.tokenize(line.strip())
            if tokens:
                all_documents[-1].append(tokens)
        all_documents.append([])
    all_documents = [x for x in all_documents if x]
    rng.shuffle(all_documents)
    vocab_words = list(tokenizer.vocab.keys())
    instances = []
    for _ in range(dupe_factor):
        for document_index in range(len(all_documents)):
            instances.extend(
                create_instances_from_document(
                    all_documents,
                    document_index,
                    max_seq_length,
                    short_seq_prob,
                    masked_lm_prob,
                    max_predictions_per_seq,
                    vocab_words,
                    rng,
                )
            )
    rng.shuffle(instances)
    return instances


def create_instances_from_document(
    all_documents,
    document_index,
    max_seq_length,
    short_seq_prob,
    masked_lm_prob,
    max_predictions_per_seq,
    vocab_words,
    rng,
):
    document = all_documents[document_index]
    max_num_tokens = max_seq_length - 3
    target_seq_length = max_num_tokens
    if rng.random() < short_seq_prob:
        target_seq_length = rng.randint(2, max_num_tokens)
    instances, current_chunk, current_length, i = [], [], 0, 0
    while i < len(document):
        segment = document[i]
        current_chunk.append(segment)
        current_length += len(segment)
        if i == len(document) - 1 or current_length >= target_seq_length:
            if current_chunk:
                a_end = 1
                if len(current_chunk) >= 2:
                    a_end = rng.randint(1, len(current_chunk) - 1)
                tokens_a = []
                for j in range(a_end):
                    tokens_a.extend(current_chunk[j])
                tokens_b = []
                if len(current_chunk) == 1 or rng.random() < 0.5:
                    is_random_next = True
                    target_b_length = target_seq_length - len(tokens_a)
                    for _ in range(10):
                        random_document_index = rng.randint(0, len(all_documents) - 1)
                        if random_document_index != document_index:
                            break
                    random_document = all_documents[random_document_index]
                    random_start = rng.randint(0, len(random_document) - 1)
                    for j in range(random_start, len(random_document)):
                        tokens_b.extend(random_document[j])
                        if len(tokens_b) >= target_b_length:
                            break
                    i -= len(current_chunk) - a_end
                else:
                    is_random_next = False
                    for j in range(a_end, len(current_chunk)):
                        tokens_b.extend(current_chunk[j])
                truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng)
                tokens = ["[CLS]"] + tokens_a + ["[SEP]"] + tokens_b + ["[SEP]"]
                segment_ids = [0] * (len(tokens_a) + 2) + [1] * (len(tokens_b) + 1)
                tokens, positions, labels = create_masked_lm_predictions(
                    tokens, masked_lm_prob, max_predictions_per_seq, vocab_words, rng
                )
                instances.append(TrainingInstance(tokens, segment_ids, positions, labels, is_random_next))
            current_chunk, current_length = [], 0
        i += 1
    return instances


def create_masked_lm_predictions(tokens, masked_lm_prob, max_predictions_per_seq, vocab_words, rng):
    cand_indexes = [i for i, t in enumerate(tokens) if t not in ("[CLS]", "[SEP]")]
    rng.shuffle(cand_indexes)
    output_tokens = list(tokens)
    num_to_predict = min(max_predictions_per_seq, max(1, int(round(len(tokens) * masked_lm_prob))))
    masked_lms, covered = [], set()
    for index in cand_indexes:
        if len(masked_lms) >= num_to_predict:
            break
        if index in covered:
            continue
        covered.add(index)
        if rng.random() < 0.8:
            masked_token = "[MASK]"
        elif rng.random() < 0.5:
            masked_token = tokens[index]
        else:
            masked_token = vocab_words[rng.randint(0, len(vocab_words) - 1)]
        output_tokens[index] = masked_token
        masked_lms.append(MaskedLmInstance(index=index, label=tokens[index]))
    masked_lms = sorted(masked_lms, key=lambda x: x.index)
    return output_tokens, [p.index for p in masked_lms], [p.label for p in masked_lms]


def truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng):
    while len(tokens_a) + len(tokens_b) > max_num_tokens:
        trunc = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
        if rng.random() < 0.5:
            del trunc[0]
        else:
            trunc.pop()


def write_instances(instances, tokenizer, max_seq_length, max_predictions_per_seq, out_dir):
    """The original's write_instance_to_example_files, to .npy instead of TFRecord."""
    import numpy as np

    n = len(instances)
    ids = np.zeros((n, max_seq_length), np.int32)
    seg = np.zeros((n, max_seq_length), np.int8)
    pos = np.zeros((n, max_predictions_per_seq), np.int32)
    lab = np.zeros((n, max_predictions_per_seq), np.int32)
    nsp = np.zeros(n, np.int8)
    for i, inst in enumerate(instances):
        x = tokenizer.convert_tokens_to_ids(inst.tokens)
        ids[i, : len(x)] = x
        seg[i, : len(inst.segment_ids)] = inst.segment_ids
        pos[i, : len(inst.masked_lm_positions)] = inst.masked_lm_positions
        y = tokenizer.convert_tokens_to_ids(inst.masked_lm_labels)
        lab[i, : len(y)] = y
        nsp[i] = int(inst.is_random_next)
    for name, arr in (("input_ids", ids), ("segment_ids", seg), ("positions", pos), ("labels", lab), ("nsp", nsp)):
        np.save(Path(out_dir) / f"{name}.npy", arr)


def run_reference(inputs, tokenizer_dir, out_dir, dupe_factor, max_seq_length=128):
    from bertkit.corpus import expand_inputs, iter_documents

    tok = FullTokenizer(Path(tokenizer_dir) / "vocab.txt", do_lower_case=True)
    rng = random.Random(12345)
    documents = [d.sentences() for d in iter_documents(expand_inputs(inputs))]
    instances = create_training_instances(documents, tok, max_seq_length, dupe_factor, 0.1, 0.15, 20, rng)
    write_instances(instances, tok, max_seq_length, 20, out_dir)
    return len(instances)


def run_ours(inputs, tokenizer_dir, out_dir, dupe_factor, workers, max_seq_length=128):
    from bertkit.pretraining.format import PrepareOptions
    from bertkit.pretraining.prepare import prepare

    m = prepare(
        inputs,
        tokenizer_dir,
        out_dir,
        PrepareOptions(dupe_factor=dupe_factor, max_seq_length=max_seq_length),
        workers=workers,
        progress=False,
        overwrite=True,
    )
    return sum(m["counts"]["instances"].values())


# =============================================================================================
# measurement


def _tree_rss(pid: int) -> int:
    """Summed VmRSS (bytes) of ``pid`` and all its descendants."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
                        break
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/children") as f:
                    stack.extend(int(c) for c in f.read().split())
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total


def measure(side: str, inputs: list[str], tokenizer: str, dupe: int, workers: int | None) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"bench-{side}-") as tmp:
        cmd = [
            sys.executable,
            __file__,
            "--child",
            side,
            "--tokenizer",
            tokenizer,
            "--dupe-factor",
            str(dupe),
            "--out",
            str(Path(tmp) / "out"),
            "--inputs",
            *inputs,
        ]
        if workers:
            cmd += ["--workers", str(workers)]
        peak = 0
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        done = threading.Event()

        def sample():
            nonlocal peak
            while not done.is_set():
                peak = max(peak, _tree_rss(proc.pid))
                time.sleep(0.05)

        th = threading.Thread(target=sample, daemon=True)
        th.start()
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)  # CPU time of the child and its reaped workers
        proc.returncode = os.waitstatus_to_exitcode(status)
        done.set()
        th.join()
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"{side} failed with exit status {proc.returncode}")
        res = json.loads(out.strip().splitlines()[-1])
    mb = sum(Path(p).stat().st_size for p in res["files"]) / 1e6
    cpu = usage.ru_utime + usage.ru_stime
    return {
        "side": side,
        "seconds": wall,
        "cpu_seconds": cpu,
        "mb": mb,
        "mb_per_s": mb / wall,
        "mb_per_cpu_s": mb / cpu,
        "instances": res["instances"],
        "peak_rss_gb": peak / 2**30,
    }


def synthetic_corpus(target_gb: float, directory: Path) -> list[str]:
    """Repeat the shared JSONL corpus into one file of at least ``target_gb`` GB."""
    src = sorted((SHARED / "corpus").glob("*.jsonl"))
    path = directory / "synthetic.jsonl"
    with open(path, "wb") as f:
        while f.tell() < target_gb * 1e9:
            for p in src:
                f.write(p.read_bytes())
    return [str(path)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--inputs", nargs="+", default=[str(SHARED / "corpus" / n) for n in ("books.jsonl", "news.jsonl", "wiki.jsonl")]
    )
    ap.add_argument("--tokenizer", default=str(SHARED / "checkpoints" / "minilm-l6-uncased"))
    ap.add_argument("--dupe-factor", type=int, default=10)
    ap.add_argument("--workers", type=int, default=None, help="ours: worker processes (default: cores)")
    ap.add_argument("--only", choices=["ours", "reference"], default=None)
    ap.add_argument("--synthetic-gb", type=float, default=0.0, help="run ours on a repeated corpus this big")
    ap.add_argument("--child", choices=["ours", "reference"], help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        t = time.perf_counter()
        if args.child == "ours":
            n = run_ours(args.inputs, args.tokenizer, args.out, args.dupe_factor, args.workers)
        else:
            Path(args.out).mkdir(parents=True)
            n = run_reference(args.inputs, args.tokenizer, args.out, args.dupe_factor)
        print(json.dumps({"instances": n, "seconds": time.perf_counter() - t, "files": args.inputs}))
        return

    print(
        f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}; "
        f"date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-synth-") as tmp:
        inputs = synthetic_corpus(args.synthetic_gb, Path(tmp)) if args.synthetic_gb else args.inputs
        for side in ("reference", "ours"):
            if args.only and side != args.only:
                continue
            r = measure(side, inputs, args.tokenizer, args.dupe_factor, args.workers)
            results.append(r)
            print(
                f"{side:9s}  {r['mb']:7.1f} MB  wall {r['seconds']:7.1f} s = {r['mb_per_s']:5.2f} MB/s  "
                f"CPU {r['cpu_seconds']:7.1f} s = {r['mb_per_cpu_s']:5.2f} MB/CPU-s  "
                f"{r['instances']:>9,d} instances  peak RSS {r['peak_rss_gb']:.2f} GB",
                flush=True,
            )
    if len(results) == 2:
        ref, ours = results
        print(
            f"speed-up, wall clock: {ours['mb_per_s'] / ref['mb_per_s']:.1f}x; per CPU-second: "
            f"{ours['mb_per_cpu_s'] / ref['mb_per_cpu_s']:.1f}x; (dupe_factor {args.dupe_factor}, "
            f"max_seq_length 128; 1-min load average at the end: {os.getloadavg()[0]:.1f})"
        )


if __name__ == "__main__":
    main()
