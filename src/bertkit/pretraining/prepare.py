"""Raw corpora -> sentence-paired, masked, sharded pre-training instances (``bertkit prepare``).

This follows Google's ``create_pretraining_data.py`` (each knob an option with the original's
default) and fixes what made it painful: it streams (bounded memory whatever the corpus size),
runs in several processes, and its output is deterministic for a seed whatever the number of
workers.

Pipeline: :mod:`bertkit.corpus` streams documents; the main process groups them into chunks of
about 1 MiB (:func:`bertkit.corpus.iter_chunks`, boundaries depend only on the data); each chunk
is a task for a worker (segment, tokenize with ``Tokenizer.tokenize_ids_batch``, build
instances, mask) whose randomness is seeded by ``(seed, chunk index)`` only; the main process
writes results in chunk order into fixed-width ``.npy`` shards and writes ``manifest.json``
last, all inside a temporary directory renamed into place at the end.

Across machines (``num_shards``/``shard_index``, :func:`merge_parts`): the chunk is also the unit
of work between machines. Part ``i`` of ``n`` counts the corpus's chunks (a reading pass, no
tokenization), takes the contiguous range ``[i*C//n, (i+1)*C//n)`` and writes it to
``OUT/part-0000i-of-0000n/``; the merge writes ``OUT/manifest.json`` listing every part's shards
in part order. Since a chunk's instances depend only on its documents and its global index, and
the parts are contiguous ranges in order, the merged data is the single run's instance for
instance, in the same order, under the same data key.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import random
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import asdict, fields
from itertools import islice
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bertkit import __version__, outputs
from bertkit.corpus import CorpusStats, Document, expand_inputs, iter_chunks, iter_documents
from bertkit.errors import BertkitError
from bertkit.fileio import atomic_dir, atomic_open, atomic_write_json, read_json
from bertkit.pretraining.format import (
    CONTINUATION_FILE,
    FORMAT_NAME,
    FORMAT_VERSION,
    IGNORE_INDEX,
    MANIFEST,
    SPLITS,
    PrepareOptions,
    ShardWriter,
    VocabInfo,
    data_key,
    file_sha256,
)
from bertkit.pretraining.instances import (
    DocumentPool,
    _ChunkStats,
    create_nsp_instances,
    create_packed_instances,
)
from bertkit.pretraining.masking import _uniforms, hash64, instance_keys, mask_tokens
from bertkit.tokenization import Tokenizer

PART_PREFIX = "part-"

# ---------------------------------------------------------------------------------------------
# one chunk of work (runs in a worker process)

_WORKER: dict = {}


def _init_worker(tokenizer_dir: str, vocab: VocabInfo, opts: PrepareOptions, threads: bool) -> None:
    if not threads:
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
    _WORKER["tok"] = Tokenizer.from_pretrained(tokenizer_dir)
    _WORKER["vocab"] = vocab
    _WORKER["opts"] = opts


def _tokenize_documents(chunk: list[Document], language: str, stats: _ChunkStats):
    """Segment and tokenize a chunk's documents; drops (and counts) empty sentences/documents."""
    tok = _WORKER["tok"]
    per_doc = [d.sentences(language) for d in chunk]
    flat = [s for sents in per_doc for s in sents]
    stats.sentences += len(flat)
    ids = tok.tokenize_ids_batch(flat) if flat else []
    docs, doc_ids = [], []
    k = 0
    for d, sents in zip(chunk, per_doc):
        doc = [s_ids for s_ids in ids[k : k + len(sents)] if s_ids]
        stats.empty_sentences += len(sents) - len(doc)
        stats.tokens += sum(map(len, doc))
        k += len(sents)
        if doc:
            docs.append(doc)
            doc_ids.append(d.doc_id)
        else:
            stats.empty_documents += 1
    return docs, doc_ids


def validation_documents(doc_ids: list[int], fraction: float, seed: int, index: int) -> set[int]:
    """The documents of chunk ``index`` that go to the validation split.

    Chosen per chunk, never one alone: NSP's random "next" segment must come from another
    document of the same split in the same chunk, so a chunk with a single validation document
    could only make actual-next pairs (a validation set of one NSP label). The count is
    ``fraction * n`` rounded at random (seeded), a count of 1 becomes 2 or 0 with equal odds (the
    expected fraction is unchanged), and the documents with the smallest seeded hashes are taken.
    A pure function of its arguments, so the split does not depend on the number of workers.
    """
    distinct = sorted(set(doc_ids))
    n = len(distinct)
    if fraction <= 0 or n < 2:
        return set()
    u_count, u_pair = _uniforms(instance_keys(hash64(seed, "validation-count"), np.asarray([index])), 0, 2)[0]
    k = int(fraction * n + u_count)
    if k == 1:
        k = 2 if u_pair < 0.5 else 0
    if k == 0:
        return set()
    u = _uniforms(instance_keys(hash64(seed, "validation"), np.asarray(distinct)), 0, 1)[:, 0]
    return {distinct[i] for i in np.argsort(u, kind="stable")[:k]}


def process_chunk(index: int, chunk: list[Document]) -> dict:
    """Tokenize, build and (statically) mask the instances of one chunk: a pure function of
    the chunk, its index, the options and the vocabulary."""
    opts: PrepareOptions = _WORKER["opts"]
    vocab: VocabInfo = _WORKER["vocab"]
    stats = _ChunkStats()
    docs, doc_ids = _tokenize_documents(chunk, opts.language, stats)
    val_docs = validation_documents(doc_ids, opts.validation_fraction, opts.seed, index)
    is_val = [d in val_docs for d in doc_ids]
    result: dict = {"index": index, "nbytes": sum(d.nbytes for d in chunk), "splits": {}}
    for split in SPLITS:
        sel = [i for i, v in enumerate(is_val) if v == (split == "validation")]
        pool = DocumentPool([docs[i] for i in sel], [doc_ids[i] for i in sel], vocab.sep_id)
        rng = random.Random(hash64(opts.seed, "instances", index, split))
        dupe = opts.dupe_factor if split == "train" else 1  # validation: one pass is enough
        if opts.nsp:
            inst = create_nsp_instances(pool, opts, rng, dupe, stats)
        else:
            inst = create_packed_instances(pool, opts, rng, dupe)
        arrays = inst.arrays(pool, opts.max_seq_length, vocab)
        if not opts.nsp:
            del arrays["nsp_labels"]
        if opts.masking == "static":
            masked, positions, labels = mask_tokens(
                arrays["input_ids"],
                arrays["lengths"][:, 1],
                vocab,
                mask_prob=opts.masked_lm_prob,
                max_predictions=opts.max_predictions_per_seq,
                whole_word=opts.whole_word_mask,
                rng=np.random.default_rng(hash64(opts.seed, "static-mask", index, split)),
            )
            arrays["input_ids"] = masked
            arrays["masked_positions"] = positions.astype(np.uint16)
            arrays["masked_labels"] = np.where(labels == IGNORE_INDEX, 0, labels).astype(vocab.dtype)
        result["splits"][split] = arrays
    result["stats"] = asdict(stats)
    return result


# ---------------------------------------------------------------------------------------------
# the whole run


def _existing_manifest(out_dir: Path) -> dict | None:
    m = out_dir / MANIFEST
    return read_json(m) if m.is_file() else None


def _iter_results(tasks: Iterator[tuple[int, list[Document]]], workers: int, init_args: tuple) -> Iterator[dict]:
    """Run :func:`process_chunk` over tasks, results in task order, at most 2*workers in flight."""
    if workers <= 1:
        _init_worker(*init_args[:3], True)
        for index, chunk in tasks:
            yield process_chunk(index, chunk)
        return
    ctx = mp.get_context("spawn")
    with ctx.Pool(workers, initializer=_init_worker, initargs=(*init_args[:3], False)) as pool:
        pending: deque = deque()
        for index, chunk in tasks:
            pending.append(pool.apply_async(process_chunk, (index, chunk)))
            while len(pending) >= 2 * workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


def part_name(index: int, num_shards: int) -> str:
    """The directory of part ``index`` of ``num_shards`` inside the output directory."""
    return f"{PART_PREFIX}{index:05d}-of-{num_shards:05d}"


def chunk_range(num_chunks: int, num_shards: int, index: int) -> tuple[int, int]:
    """Part ``index``'s contiguous chunk indices ``[lo, hi)``: sizes differ by at most one."""
    return num_chunks * index // num_shards, num_chunks * (index + 1) // num_shards


def _documents(paths: list[Path], opts: PrepareOptions, stats: CorpusStats) -> Iterator[Document]:
    return iter_documents(
        paths,
        opts.format,
        max_line_bytes=opts.max_line_bytes,
        max_document_bytes=opts.max_document_bytes,
        errors=opts.encoding_errors,
        stats=stats,
    )


def _skipped_lines_note(corpus_counts: dict, max_line_bytes: int) -> str:
    """``; N line(s) longer than --max-line-bytes M were skipped (FILE:LINE (B bytes), ...): ...``
    for a "no instances" error, or "" when no line was skipped."""
    skipped = corpus_counts["skipped"]
    if not skipped["long_lines"]:
        return ""
    return (
        f"; {skipped['long_lines']} line(s) longer than --max-line-bytes {max_line_bytes} were skipped "
        f"({', '.join(skipped['long_line_examples'])}): raise --max-line-bytes"
    )


def _counts(corpus_counts: dict, totals: dict, instances: dict) -> dict:
    """The manifest's ``counts``: the corpus reader's (documents, lines, skipped) + the chunks'."""
    c = json.loads(json.dumps(corpus_counts))  # a deep copy: "skipped" is updated below
    c["skipped"]["empty_documents"] += totals["empty_documents"]
    c["skipped"]["empty_sentences"] = totals["empty_sentences"]
    return {
        **c,
        "sentences": totals["sentences"],
        "tokens": totals["tokens"],
        "nsp_no_other_document": totals["nsp_no_other_document"],
        "instances": instances,
    }


def prepare(
    inputs: Sequence[str | os.PathLike],
    tokenizer_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    options: PrepareOptions | None = None,
    *,
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    num_shards: int = 1,
    shard_index: int = 0,
) -> dict:
    """Prepare pre-training data; returns the manifest (``manifest["up_to_date"]`` is true when
    ``out_dir`` already held exactly this data and nothing was done).

    ``workers`` defaults to the number of CPU cores; the output does not depend on it. With
    ``num_shards`` > 1 this run prepares part ``shard_index`` only, into
    ``out_dir/part-IIIII-of-NNNNN`` (see the module docstring; :func:`merge_parts` joins them).
    Raises :class:`BertkitError` for unreadable inputs, a vocabulary that does not match the
    manifest already in ``out_dir``, or an ``out_dir`` holding other prepared data (unless
    ``overwrite``); an ``out_dir`` bertkit did not write, or one holding an input, is refused
    whatever ``overwrite`` says (:func:`bertkit.outputs.check_output_dir`).
    """
    if num_shards < 1:
        raise BertkitError(f"--num-shards must be >= 1, got {num_shards}")
    if not 0 <= shard_index < num_shards:
        raise BertkitError(
            f"--shard-index must be in [0, {num_shards - 1}] for --num-shards {num_shards}, got {shard_index}"
        )
    opts = (options or PrepareOptions()).resolved()
    out_dir = Path(out_dir)
    tokenizer_dir = Path(tokenizer_dir)
    vocab_file = tokenizer_dir / "vocab.txt"
    if not vocab_file.is_file():
        raise BertkitError(f"{vocab_file}: no such file (--tokenizer must be a directory with vocab.txt)")
    tok = Tokenizer.from_pretrained(tokenizer_dir)
    vocab = VocabInfo.from_tokenizer(tok)
    del tok  # the workers load their own; keep the main process small
    vocab_sha = file_sha256(vocab_file)
    cfg_file = tokenizer_dir / "tokenizer_config.json"
    tok_cfg_sha = file_sha256(cfg_file) if cfg_file.is_file() else ""
    paths = expand_inputs(inputs)
    input_hashes = [file_sha256(p) for p in paths]
    key = data_key(input_hashes, opts, vocab_sha, tok_cfg_sha)
    sharded = num_shards > 1
    if sharded:  # a part is its own data set (its own key), and names the whole one's
        out_dir = out_dir / part_name(shard_index, num_shards)
        whole_key, key = key, hashlib.sha256(f"{key} part {shard_index} of {num_shards}".encode()).hexdigest()

    old = _existing_manifest(out_dir) if out_dir.exists() else None
    if old is not None and not overwrite:
        if old.get("vocab_sha256") != vocab_sha:
            raise BertkitError(
                f"{out_dir / MANIFEST}: prepared with a different vocabulary (sha256 "
                f"{str(old.get('vocab_sha256'))[:12]}…) than {vocab_file} ({vocab_sha[:12]}…); "
                "use another --out or pass --overwrite"
            )
        if old.get("key") == key:
            return {**old, "up_to_date": True}
        raise BertkitError(
            f"{out_dir}: already holds data prepared from other inputs or options "
            f"(key {str(old.get('key'))[:12]}… vs {key[:12]}…); use another --out or pass --overwrite"
        )
    # at least the input_ids of every copy of the text (~4 bytes of text per token)
    at_least = sum(p.stat().st_size for p in paths) // 4 * opts.dupe_factor * vocab.dtype.itemsize
    outputs.check_output_dir(
        out_dir, "prepare", inputs=[*inputs, *paths, tokenizer_dir], overwrite=overwrite, need_bytes=at_least
    )

    workers = max(1, workers if workers is not None else (os.cpu_count() or 1))
    gz = any(p.name.endswith(".gz") for p in paths)
    total_bytes = None if gz else sum(p.stat().st_size for p in paths)
    corpus_stats = CorpusStats()
    tasks: Iterator[tuple[int, list[Document]]] = enumerate(
        iter_chunks(_documents(paths, opts, corpus_stats), opts.chunk_bytes)
    )
    if sharded:
        # a reading pass (no tokenization) finds the chunk boundaries, the same on every machine
        whole_corpus = CorpusStats()  # the processing pass stops at the end of this part
        sizes = [
            sum(d.nbytes for d in chunk)
            for chunk in tqdm(
                iter_chunks(_documents(paths, opts, whole_corpus), opts.chunk_bytes),
                desc="count chunks",
                unit=" chunks",
                disable=not progress,
                dynamic_ncols=True,
            )
        ]
        lo, hi = chunk_range(len(sizes), num_shards, shard_index)
        tasks = islice(tasks, lo, hi)
        total_bytes = sum(sizes[lo:hi])
        whole_corpus_counts = whole_corpus.to_dict()
    totals = {f.name: 0 for f in fields(_ChunkStats)}
    counts = {s: 0 for s in SPLITS}
    start = time.perf_counter()
    with atomic_dir(out_dir) as tmp, outputs.disk_errors(out_dir, "prepared data"):
        writers = {s: ShardWriter(tmp, s, opts.shard_instances) for s in SPLITS}
        bar = tqdm(
            total=total_bytes,
            unit="B",
            unit_scale=True,
            unit_divisor=1000,
            desc="prepare" if not sharded else f"prepare part {shard_index}/{num_shards}",
            disable=not progress,
            dynamic_ncols=True,
        )
        with bar:
            for res in _iter_results(tasks, workers, (str(tokenizer_dir), vocab, opts)):
                for split, arrays in res["splits"].items():
                    writers[split].add(arrays)
                    counts[split] += len(arrays["input_ids"])
                for k, v in res["stats"].items():
                    totals[k] += v
                bar.update(res["nbytes"])
                elapsed = max(time.perf_counter() - start, 1e-9)
                bar.set_postfix_str(f"{sum(counts.values()) / elapsed:,.0f} inst/s", refresh=False)
            if total_bytes and not sharded:  # blank lines and skipped lines are not in any document's size
                bar.update(total_bytes - bar.n)
        shards = {s: writers[s].finish() for s in SPLITS}
        for name in ("vocab.txt", "tokenizer_config.json"):  # the data describes itself
            if (tokenizer_dir / name).is_file():
                (tmp / name).write_bytes((tokenizer_dir / name).read_bytes())
        if opts.whole_word_mask and opts.masking == "dynamic":
            np.save(tmp / CONTINUATION_FILE, vocab.continuation)
        if sum(counts.values()) == 0 and not sharded:  # a part may be empty; the merge checks the whole
            raise BertkitError(
                f"{', '.join(map(str, paths))}: no instances could be made "
                f"(no non-empty documents with tokens){_skipped_lines_note(corpus_stats.to_dict(), opts.max_line_bytes)}"
            )
        manifest = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "bertkit_version": __version__,
            "key": key,
            "vocab_size": vocab.size,
            "vocab_sha256": vocab_sha,
            "tokenizer_config_sha256": tok_cfg_sha,
            "dtype": vocab.dtype.name,
            "special_ids": {
                "pad": vocab.pad_id,
                "unk": vocab.unk_id,
                "cls": vocab.cls_id,
                "sep": vocab.sep_id,
                "mask": vocab.mask_id,
            },
            "max_seq_length": opts.max_seq_length,
            "nsp": opts.nsp,
            "masking": opts.masking,
            "mask_prob": opts.masked_lm_prob,
            "max_predictions_per_seq": opts.max_predictions_per_seq,
            "whole_word_mask": opts.whole_word_mask,
            "options": asdict(opts),
            "inputs": [{"path": str(p), "bytes": p.stat().st_size, "sha256": h} for p, h in zip(paths, input_hashes)],
            "counts": _counts(corpus_stats.to_dict(), totals, counts),
            "splits": {s: {"num_instances": counts[s], "shards": shards[s]} for s in SPLITS},
        }
        if sharded:
            # counts: the corpus reader's are the whole corpus's (from the counting pass), the
            # sentences, tokens and instances this part's
            manifest["counts"] = _counts(whole_corpus_counts, totals, counts)
            manifest["part"] = {
                "index": shard_index,
                "num_shards": num_shards,
                "chunks": [lo, hi],
                "num_chunks": len(sizes),
                "data_key": whole_key,
                "corpus_counts": whole_corpus_counts,
                "chunk_totals": totals,
            }
        outputs.write_marker(tmp, "prepare")
        atomic_write_json(tmp / MANIFEST, manifest)  # last: its presence marks complete data
    return manifest


def merge_parts(out_dir: str | os.PathLike, num_shards: int | None = None, overwrite: bool = False) -> dict:
    """Join the parts that ``prepare(..., num_shards=N, shard_index=i)`` wrote into ``out_dir``:
    ``out_dir/manifest.json`` lists every part's shards in part order (no data is copied), so
    the loader reads the parts as one data set, the single run's instance for instance, under
    its data key. Every part must be complete and from the same inputs, options and vocabulary.
    Returns the manifest (``up_to_date`` when ``out_dir`` already holds this merge)."""
    out_dir = Path(out_dir)
    found = sorted(p for p in out_dir.glob(f"{PART_PREFIX}*") if p.is_dir()) if out_dir.is_dir() else []
    parts = [p for p in found if (p / MANIFEST).is_file()]
    if not parts:
        raise BertkitError(
            f"{out_dir}: no prepared parts ({PART_PREFIX}*/{MANIFEST}); run `bertkit prepare --num-shards N "
            "--shard-index I` for every I first"
        )
    manifests = [read_json(p / MANIFEST) for p in parts]
    first = manifests[0]
    if "part" not in first:
        raise BertkitError(f"{parts[0] / MANIFEST}: not a part of a sharded preparation")
    n = first["part"]["num_shards"]
    if num_shards is not None and num_shards != n:
        raise BertkitError(f"{parts[0] / MANIFEST}: a part of {n} shards, not --num-shards {num_shards}")
    by_index = {}
    same = [k for k in first if k not in ("key", "counts", "splits", "part")]
    for path, m in zip(parts, manifests):
        part = m.get("part") or {}
        if part.get("num_shards") != n or part.get("data_key") != first["part"]["data_key"]:
            raise BertkitError(
                f"{path / MANIFEST}: from another preparation than {parts[0].name} (other inputs, options, "
                f"vocabulary or shard count); re-prepare it or remove it"
            )
        differs = [k for k in same if m.get(k) != first[k]]
        if differs:
            raise BertkitError(f"{path / MANIFEST}: {', '.join(differs)} differ from {parts[0].name}")
        by_index[part["index"]] = (path, m)
    missing = [part_name(i, n) for i in range(n) if i not in by_index]
    if missing:
        raise BertkitError(
            f"{out_dir}: {len(missing)} of {n} parts missing or unfinished ({', '.join(missing[:5])}"
            f"{', ...' if len(missing) > 5 else ''}); run `bertkit prepare ... --shard-index I` for them"
        )
    ordered = [by_index[i] for i in range(n)]
    for (_, a), (path, b) in zip(ordered, ordered[1:]):
        if a["part"]["chunks"][1] != b["part"]["chunks"][0] or a["part"]["corpus_counts"] != b["part"]["corpus_counts"]:
            raise BertkitError(f"{path / MANIFEST}: its chunks do not continue {a['part']['index']}'s")
    key = first["part"]["data_key"]
    old = _existing_manifest(out_dir)
    if old is not None and not overwrite:
        if old.get("key") == key and old.get("parts") == [p.name for p, _ in ordered]:
            return {**old, "up_to_date": True}
        if old.get("key") != key:
            raise BertkitError(
                f"{out_dir / MANIFEST}: already holds other data (key {str(old.get('key'))[:12]}… vs {key[:12]}…); "
                "pass --overwrite"
            )
    totals = {k: sum(m["part"]["chunk_totals"][k] for _, m in ordered) for k in first["part"]["chunk_totals"]}
    counts = {s: sum(m["splits"][s]["num_instances"] for _, m in ordered) for s in SPLITS}
    if sum(counts.values()) == 0:
        note = _skipped_lines_note(first["part"]["corpus_counts"], first["options"]["max_line_bytes"])
        raise BertkitError(f"{out_dir}: no instances in any part (no non-empty documents with tokens){note}")
    splits = {}
    for s in SPLITS:
        shards = []
        for path, m in ordered:
            for entry in m["splits"][s]["shards"]:
                files = {k: f"{path.name}/{f}" for k, f in entry["files"].items()}
                shards.append({**entry, "name": f"{path.name}/{entry['name']}", "files": files})
        splits[s] = {"num_instances": counts[s], "shards": shards}
    manifest = {k: v for k, v in first.items() if k != "part"}
    manifest.update(
        key=key,
        counts=_counts(first["part"]["corpus_counts"], totals, counts),
        splits=splits,
        parts=[p.name for p, _ in ordered],
    )
    src = ordered[0][0]
    for name in ("vocab.txt", "tokenizer_config.json", CONTINUATION_FILE):
        if (src / name).is_file():
            with atomic_open(out_dir / name) as f:
                f.write((src / name).read_bytes())
    outputs.write_marker(out_dir, "prepare")
    atomic_write_json(out_dir / MANIFEST, manifest)  # last: its presence marks complete data
    return manifest
