"""bertkit prepare: statistics of the instances, determinism, bad input, MLM-only packing."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from pretraining_helpers import make_documents, write_bert_format, write_vocab

from bertkit.errors import BertkitError
from bertkit.pretraining.format import PrepareOptions, VocabInfo, check_vocab
from bertkit.pretraining.instances import truncate_counts
from bertkit.pretraining.masking import mask_tokens
from bertkit.pretraining.prepare import prepare
from bertkit.tokenization import Tokenizer

T = 128


def load_split(out: Path, split: str = "train") -> dict[str, np.ndarray]:
    """All shards of one split, concatenated per field."""
    m = json.loads((out / "manifest.json").read_text())
    parts: dict[str, list] = {}
    for shard in m["splits"][split]["shards"]:
        for key, fname in shard["files"].items():
            parts.setdefault(key, []).append(np.load(out / fname))
    return {k: np.concatenate(v) for k, v in parts.items()}


def shard_hashes(out: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.glob("*.npy"))}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A synthetic corpus (~140k tokens) in BERT format, its documents, and a hand-made vocab."""
    tmp = tmp_path_factory.mktemp("corpus")
    docs = make_documents(1500, seed=1)
    path = write_bert_format(tmp / "corpus.txt", docs)
    vocab = write_vocab(tmp / "vocab")
    return {"tmp": tmp, "path": path, "docs": docs, "vocab": vocab, "tok": Tokenizer.from_pretrained(vocab)}


@pytest.fixture(scope="module")
def static_nsp(corpus):
    out = corpus["tmp"] / "static-nsp"
    m = prepare(
        [corpus["path"]],
        corpus["vocab"],
        out,
        PrepareOptions(dupe_factor=5, validation_fraction=0.05, seed=7, chunk_bytes=100_000),
        workers=1,
        progress=False,
    )
    return out, m


def test_manifest_records_everything(static_nsp, corpus):
    out, m = static_nsp
    assert m["vocab_sha256"] == hashlib.sha256((corpus["vocab"] / "vocab.txt").read_bytes()).hexdigest()
    assert m["vocab_size"] == len(corpus["tok"])
    assert m["max_seq_length"] == T and m["nsp"] is True and m["masking"] == "static"
    assert m["max_predictions_per_seq"] == 20  # ceil(128 * 0.15), the original's 20
    assert m["options"]["dupe_factor"] == 5 and m["options"]["short_seq_prob"] == 0.1
    assert m["dtype"] == "uint16"
    assert m["counts"]["documents"] == len(corpus["docs"])
    assert m["counts"]["sentences"] == sum(len(d) for d in corpus["docs"])
    assert m["counts"]["tokens"] >= 100_000
    total = m["splits"]["train"]["num_instances"] + m["splits"]["validation"]["num_instances"]
    assert m["splits"]["validation"]["num_instances"] > 0
    assert total == sum(m["counts"]["instances"].values())
    assert m["bertkit_version"]
    # manifest is the last file written: every listed shard exists with the recorded hash
    for split in ("train", "validation"):
        for shard in m["splits"][split]["shards"]:
            for key, fname in shard["files"].items():
                assert hashlib.sha256((out / fname).read_bytes()).hexdigest() == shard["sha256"][key]
    ids = np.load(out / m["splits"]["train"]["shards"][0]["files"]["input_ids"], mmap_mode="r")
    assert isinstance(ids, np.memmap) and ids.dtype == np.uint16 and ids.shape[1] == T


def test_masking_statistics(static_nsp):
    out, _ = static_nsp
    a = load_split(out)
    ids = a["input_ids"].astype(np.int64)
    lengths = a["lengths"].astype(np.int64)
    pos = a["masked_positions"].astype(np.int64)
    labels = a["masked_labels"].astype(np.int64)
    used = pos > 0
    assert lengths[:, 1].sum() >= 100_000
    frac = used.sum() / lengths[:, 1].sum()
    assert abs(frac - 0.15) <= 0.005, frac
    at = np.take_along_axis(ids, pos, 1)[used]
    lab = labels[used]
    as_mask = (at == 4).mean()  # [MASK]
    unchanged = (at == lab).mean()
    rand = 1 - as_mask - unchanged
    assert abs(as_mask - 0.8) <= 0.01 and abs(unchanged - 0.1) <= 0.01 and abs(rand - 0.1) <= 0.01, (
        as_mask,
        unchanged,
        rand,
    )
    # never a special token: labels are real pieces, positions inside the sequence, not [CLS]/[SEP]
    assert not np.isin(lab, [0, 1, 2, 3, 4]).any()
    rows = np.nonzero(used)[0]
    assert (pos[used] < lengths[rows, 1]).all() and (pos[used] >= 1).all()
    # at most max_predictions, at least one per instance
    assert used.sum(1).max() <= 20 and used.sum(1).min() >= 1


def test_instances_shape_and_nsp(static_nsp):
    out, _ = static_nsp
    a = load_split(out)
    ids, lengths, nsp, docs = (
        a["input_ids"].astype(np.int64),
        a["lengths"].astype(np.int64),
        a["nsp_labels"],
        a["docs"],
    )
    assert (lengths[:, 1] <= T).all() and (lengths[:, 0] < lengths[:, 1]).all()
    n = len(ids)
    rows = np.arange(n)
    assert (ids[:, 0] == 2).all()  # [CLS]
    assert (ids[rows, lengths[:, 0] - 1] == 3).all() and (ids[rows, lengths[:, 1] - 1] == 3).all()  # [SEP]s
    assert (ids[np.arange(T)[None, :] >= lengths[:, 1:2]] == 0).all()  # [PAD] after the end
    assert abs(nsp.mean() - 0.5) <= 0.02, nsp.mean()
    # a random next never comes from the same document, an actual next always does
    assert (docs[nsp == 1, 0] != docs[nsp == 1, 1]).all()
    assert (docs[nsp == 0, 0] == docs[nsp == 0, 1]).all()


def test_validation_split_has_both_nsp_labels_even_with_few_documents_per_chunk(corpus, tmp_path):
    """Regression: validation documents were chosen one by one, so with a small fraction most
    chunks held at most one, which can only make actual-next pairs (a real 44 MB corpus gave a
    validation split with 22% random nexts). They now come at least two per chunk."""
    m = prepare(
        [corpus["path"]],
        corpus["vocab"],
        tmp_path / "o",
        PrepareOptions(dupe_factor=1, validation_fraction=0.04, seed=5, chunk_bytes=10_000),
        workers=1,
        progress=False,
    )
    val, train = load_split(tmp_path / "o", "validation"), load_split(tmp_path / "o", "train")
    nsp, docs = val["nsp_labels"], val["docs"]
    assert len(nsp) >= 100
    assert abs(nsp.mean() - 0.5) <= 0.06, nsp.mean()
    assert (docs[nsp == 1, 0] != docs[nsp == 1, 1]).all()
    val_docs = set(docs.ravel().tolist())
    assert not val_docs & set(train["docs"].ravel().tolist())  # no document in both splits
    assert 0.02 <= len(val_docs) / m["counts"]["documents"] <= 0.07


def test_validation_documents_choice():
    from bertkit.pretraining.prepare import validation_documents

    ids = list(range(100, 400))
    picks = [validation_documents(ids[i : i + 5], 0.1, 0, i) for i in range(0, 300, 5)]
    assert all(len(p) in (0, 2) for p in picks)  # never a lone validation document
    assert 15 <= sum(map(len, picks)) <= 45  # ~10% of 300
    assert validation_documents(ids[:5], 0.1, 0, 0) == validation_documents(ids[:5], 0.1, 0, 0)
    assert validation_documents([7, 7, 7], 0.9, 0, 0) == set()  # parts of one document
    assert validation_documents(ids, 0.0, 0, 0) == set()


def test_instances_decode_to_source_sentences(corpus, tmp_path):
    """Untruncated segments are whole consecutive sentences of the recorded documents."""
    out = tmp_path / "dyn"
    prepare(
        [corpus["path"]],
        corpus["vocab"],
        out,
        PrepareOptions(dupe_factor=1, masking="dynamic", validation_fraction=0, seed=3),
        workers=1,
        progress=False,
    )
    a = load_split(out)
    tok = corpus["tok"]
    norm = [[tok.decode(tok.tokenize_ids_batch([s])[0]) for s in d] for d in corpus["docs"]]
    checked = 0
    for i in range(0, len(a["input_ids"]), 7):
        la, total = (int(x) for x in a["lengths"][i])
        if total >= T:  # may have been truncated
            continue
        seg_a = tok.decode(a["input_ids"][i, 1 : la - 1].tolist())
        seg_b = tok.decode(a["input_ids"][i, la : total - 1].tolist())
        doc_a, doc_b = (int(x) for x in a["docs"][i])
        for text, doc in ((seg_a, norm[doc_a]), (seg_b, norm[doc_b])):
            starts = [j for j, s in enumerate(doc) if text.startswith(s)]
            assert any(" ".join(doc[j:k]) == text for j in starts for k in range(j + 1, len(doc) + 1)), (text, doc)
        checked += 1
    assert checked > 100


def test_whole_word_masking_masks_all_pieces(corpus, tmp_path):
    out = tmp_path / "wwm"
    prepare(
        [corpus["path"]],
        corpus["vocab"],
        out,
        PrepareOptions(dupe_factor=1, whole_word_mask=True, validation_fraction=0),
        workers=1,
        progress=False,
    )
    a = load_split(out)
    tok = corpus["tok"]
    cont = VocabInfo.from_tokenizer(tok).continuation
    ids = a["input_ids"].astype(np.int64)
    pos = a["masked_positions"].astype(np.int64)
    labels = a["masked_labels"].astype(np.int64)
    orig = ids.copy()
    rows = np.nonzero(pos > 0)[0]
    orig[rows, pos[pos > 0]] = labels[pos > 0]  # undo the masking
    masked = np.zeros_like(ids, dtype=bool)
    masked[rows, pos[pos > 0]] = True
    # a piece continues a word when it starts with ## and follows a real token (truncation can
    # leave a ## piece right after [CLS]/[SEP], which then starts its own "word")
    is_cont = np.zeros_like(masked)
    is_cont[:, 1:] = cont[orig[:, 1:]] & ~np.isin(orig[:, :-1], [0, 1, 2, 3, 4])
    # a masked continuation piece has its predecessor masked; a masked piece's continuation too
    assert ((masked[:, 1:] & is_cont[:, 1:]) <= masked[:, :-1]).all()
    assert ((masked[:, :-1] & is_cont[:, 1:]) <= masked[:, 1:]).all()
    assert (masked & is_cont).any()  # multi-piece words were masked at all
    frac = masked.sum() / a["lengths"][:, 1].astype(np.int64).sum()
    assert 0.13 < frac <= 0.155


def test_mlm_only_packs_across_documents(corpus, tmp_path):
    out = tmp_path / "mlm"
    m = prepare(
        [corpus["path"]],
        corpus["vocab"],
        out,
        PrepareOptions(dupe_factor=1, nsp=False, masking="dynamic", validation_fraction=0),
        workers=1,
        progress=False,
    )
    assert m["nsp"] is False
    a = load_split(out)
    assert "nsp_labels" not in a
    lengths = a["lengths"].astype(np.int64)
    assert (lengths[:, 0] == lengths[:, 1]).all()  # one segment: token types all 0
    assert (lengths[:, 1] <= T).all()
    assert (lengths[:, 1] >= T - 20).mean() > 0.8  # packed to (nearly) full length
    ids = a["input_ids"].astype(np.int64)
    inner_sep = [(ids[i, 1 : lengths[i, 1] - 1] == 3).sum() for i in range(len(ids))]
    assert np.mean(np.asarray(inner_sep) > 0) > 0.5  # documents joined with [SEP] inside
    crossing = a["docs"][:, 0] != a["docs"][:, 1]
    assert crossing.mean() > 0.5
    # every token of the corpus is in the packed instances exactly once (dupe_factor 1)
    n_tokens = (lengths[:, 1] - 2).sum() - sum(inner_sep)
    assert n_tokens == m["counts"]["tokens"]


def test_configurable_mask_rate(corpus, tmp_path):
    out = tmp_path / "p30"
    m = prepare(
        [corpus["path"]],
        corpus["vocab"],
        out,
        PrepareOptions(dupe_factor=1, masked_lm_prob=0.3, validation_fraction=0),
        workers=1,
        progress=False,
    )
    assert m["max_predictions_per_seq"] == 39
    a = load_split(out)
    frac = (a["masked_positions"] > 0).sum() / a["lengths"][:, 1].astype(np.int64).sum()
    assert abs(frac - 0.3) < 0.01


# ---- determinism and re-runs


def test_deterministic_whatever_the_worker_count(corpus, tmp_path):
    opts = PrepareOptions(dupe_factor=2, validation_fraction=0.05, chunk_bytes=60_000)
    one = tmp_path / "w1"
    two = tmp_path / "w2"
    prepare([corpus["path"]], corpus["vocab"], one, opts, workers=1, progress=False)
    prepare([corpus["path"]], corpus["vocab"], two, opts, workers=2, progress=False)
    h1 = shard_hashes(one)
    assert len(h1) >= 8 and h1 == shard_hashes(two)
    assert (one / "manifest.json").read_bytes() == (two / "manifest.json").read_bytes()


def test_same_seed_same_bytes_other_seed_differs(corpus, tmp_path):
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        prepare(
            [corpus["path"]],
            corpus["vocab"],
            tmp_path / name,
            PrepareOptions(dupe_factor=1, seed=seed),
            workers=1,
            progress=False,
        )
    assert shard_hashes(tmp_path / "a") == shard_hashes(tmp_path / "b")
    assert shard_hashes(tmp_path / "a") != shard_hashes(tmp_path / "c")


def test_rerun_is_a_noop_and_other_options_need_overwrite(corpus, tmp_path):
    out = tmp_path / "out"
    opts = PrepareOptions(dupe_factor=1)
    m1 = prepare([corpus["path"]], corpus["vocab"], out, opts, workers=1, progress=False)
    stamp = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    m2 = prepare([corpus["path"]], corpus["vocab"], out, opts, workers=1, progress=False)
    assert m2["up_to_date"] is True and m2["key"] == m1["key"]
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamp
    with pytest.raises(BertkitError, match="other inputs or options"):
        prepare([corpus["path"]], corpus["vocab"], out, PrepareOptions(dupe_factor=2), workers=1, progress=False)
    m3 = prepare(
        [corpus["path"]], corpus["vocab"], out, PrepareOptions(dupe_factor=2), workers=1, progress=False, overwrite=True
    )
    assert m3["key"] != m1["key"] and m3["options"]["dupe_factor"] == 2


def test_vocab_that_does_not_match_the_manifest(corpus, tmp_path):
    out = tmp_path / "out"
    prepare([corpus["path"]], corpus["vocab"], out, PrepareOptions(dupe_factor=1), workers=1, progress=False)
    other = write_vocab(tmp_path / "other")
    with open(other / "vocab.txt", "a") as f:
        f.write("extra\n")
    with pytest.raises(BertkitError, match="different vocabulary"):
        prepare([corpus["path"]], other, out, PrepareOptions(dupe_factor=1), workers=1, progress=False)
    with pytest.raises(BertkitError, match="different vocabulary"):
        check_vocab(out, other)
    check_vocab(out, corpus["vocab"])


# ---- bad input


def test_invalid_utf8_names_file_and_line(corpus, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"the cat .\nthe dog \xff\xfe .\n")
    with pytest.raises(BertkitError, match=r"bad\.txt:2: invalid UTF-8 at byte offset 18"):
        prepare([bad], corpus["vocab"], tmp_path / "o", PrepareOptions(dupe_factor=1), workers=1, progress=False)
    assert not (tmp_path / "o").exists()  # nothing half-written
    m = prepare(
        [bad, corpus["path"]],
        corpus["vocab"],
        tmp_path / "o",
        PrepareOptions(dupe_factor=1, encoding_errors="replace"),
        workers=1,
        progress=False,
    )
    assert m["counts"]["documents"] == len(corpus["docs"]) + 1


def test_binary_file_is_refused(corpus, tmp_path):
    binary = tmp_path / "model.txt"
    binary.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(BertkitError, match=r"model\.txt:1: NUL byte .* binary file"):
        prepare([binary], corpus["vocab"], tmp_path / "o", PrepareOptions(), workers=1, progress=False)


def test_empty_documents_and_huge_line_are_counted(corpus, tmp_path):
    jsonl = tmp_path / "docs.jsonl"
    lines = [json.dumps({"text": "\n".join(d)}) for d in corpus["docs"][:200]]
    lines.insert(5, json.dumps({"text": ""}))
    lines.insert(9, json.dumps({"text": "  \n \n"}))
    lines.insert(20, json.dumps({"text": "the cat " * (10 * 2**20 // 8)}))  # a 10 MB line
    jsonl.write_text("\n".join(lines) + "\n", encoding="utf-8")
    m = prepare([jsonl], corpus["vocab"], tmp_path / "o", PrepareOptions(dupe_factor=1), workers=1, progress=False)
    sk = m["counts"]["skipped"]
    assert sk["empty_documents"] == 2
    assert sk["long_lines"] == 1 and "docs.jsonl:21 (" in sk["long_line_examples"][0]
    assert m["counts"]["documents"] == 200
    assert m["counts"]["sentences"] == sum(len(d) for d in corpus["docs"][:200])


def test_nothing_to_make_is_an_error(corpus, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n   \n")
    with pytest.raises(BertkitError, match="no instances"):
        prepare([empty], corpus["vocab"], tmp_path / "o", PrepareOptions(), workers=1, progress=False)


def test_bad_options(corpus, tmp_path):
    with pytest.raises(BertkitError, match="--mask-prob"):
        prepare(
            [corpus["path"]],
            corpus["vocab"],
            tmp_path / "o",
            PrepareOptions(masked_lm_prob=1.5),
            workers=1,
            progress=False,
        )
    with pytest.raises(BertkitError, match="vocab.txt"):
        prepare([corpus["path"]], tmp_path, tmp_path / "o", PrepareOptions(), workers=1, progress=False)


# ---- pieces


def test_truncate_counts_match_the_original_loop():
    """Same totals per side as popping one token at a time from the longer side."""
    import random

    rng = random.Random(0)
    for la, lb, mx in [(100, 5, 50), (5, 100, 50), (60, 60, 50), (61, 60, 50), (3, 2, 10), (1000, 999, 125)]:
        a, b = la, lb
        while a + b > mx:
            if a > b:
                a -= 1
            else:
                b -= 1
        af, ab, bf, bb = truncate_counts(la, lb, mx, rng)
        assert (la - af - ab, lb - bf - bb) == (a, b)
        assert min(af, ab, bf, bb) >= 0


def test_mask_tokens_counter_based_keys_are_batch_independent(corpus):
    vocab = VocabInfo.from_tokenizer(corpus["tok"])
    rng = np.random.default_rng(0)
    ids = rng.integers(5, vocab.size, size=(8, 32)).astype(np.uint16)
    ids[:, 0] = 2
    lengths = np.full(8, 32)
    ids[:, 31] = 3
    keys = np.arange(8, dtype=np.uint64) * np.uint64(7919)
    full = mask_tokens(ids, lengths, vocab, mask_prob=0.15, max_predictions=5, keys=keys)
    part = mask_tokens(ids[3:5], lengths[3:5], vocab, mask_prob=0.15, max_predictions=5, keys=keys[3:5])
    for x, y in zip(full, part):
        assert np.array_equal(x[3:5], y)
    assert (full[1] > 0).sum(1).tolist() == [5] * 8  # round(32 * 0.15) = 5


# ---------------------------------------------------------------------------------------------
# preparation split over machines: parts + merge == one machine's run


@pytest.mark.parametrize(
    "nsp, masking, chunk_bytes",
    [(True, "static", 20_000), (False, "dynamic", 20_000), (True, "static", 300_000)],
    ids=["nsp-static", "mlm-dynamic", "more-parts-than-chunks"],
)
def test_sharded_parts_merge_to_the_single_run(corpus, tmp_path, nsp, masking, chunk_bytes):
    import torch

    from bertkit.pretraining.format import SPLITS
    from bertkit.pretraining.loader import PretrainingLoader
    from bertkit.pretraining.prepare import merge_parts

    opts = PrepareOptions(
        dupe_factor=2,
        validation_fraction=0.1,
        chunk_bytes=chunk_bytes,
        nsp=nsp,
        masking=masking,
        shard_instances=500,
    )
    single = prepare([corpus["path"]], corpus["vocab"], tmp_path / "single", opts, workers=1, progress=False)
    out = tmp_path / "sharded"
    parts = {}
    for i in (2, 0, 3, 1):  # any order, as independent machines finish
        parts[i] = prepare(
            [corpus["path"]], corpus["vocab"], out, opts, workers=1, progress=False, num_shards=4, shard_index=i
        )
    assert [parts[i]["part"]["chunks"] for i in range(4)] == [
        [parts[i]["part"]["num_chunks"] * i // 4, parts[i]["part"]["num_chunks"] * (i + 1) // 4] for i in range(4)
    ]
    assert len({p["key"] for p in parts.values()}) == 4 and single["key"] not in {p["key"] for p in parts.values()}
    merged = merge_parts(out)
    assert merged["key"] == single["key"]  # the same data set, so a run may resume across the two
    assert merged["counts"] == single["counts"]
    for split in SPLITS:
        a, b = load_split(tmp_path / "single", split), load_split(out, split)
        assert a.keys() == b.keys() and len(a["input_ids"]) > 0
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=f"{split} {k}")
    la = PretrainingLoader(tmp_path / "single", batch_size=8, seed=3)
    lb = PretrainingLoader(out, batch_size=8, seed=3)
    for _, x, y in zip(range(4), la, lb):  # one data set to the loader: the same shuffled batches
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
    assert merge_parts(out)["up_to_date"]
    assert prepare([corpus["path"]], corpus["vocab"], out, opts, workers=1, progress=False)["up_to_date"]


def test_sharded_preparation_errors(corpus, tmp_path):
    from bertkit.pretraining.prepare import merge_parts

    opts = PrepareOptions(dupe_factor=1, chunk_bytes=50_000)
    with pytest.raises(BertkitError, match=r"--shard-index must be in \[0, 2\]"):
        prepare([corpus["path"]], corpus["vocab"], tmp_path / "o", opts, progress=False, num_shards=3, shard_index=3)
    with pytest.raises(BertkitError, match="no prepared parts"):
        merge_parts(tmp_path / "o")
    for i in (0, 2):
        prepare([corpus["path"]], corpus["vocab"], tmp_path / "o", opts, progress=False, num_shards=3, shard_index=i)
    with pytest.raises(BertkitError, match="1 of 3 parts missing or unfinished \\(part-00001-of-00003\\)"):
        merge_parts(tmp_path / "o")
    other = PrepareOptions(dupe_factor=2, chunk_bytes=50_000)  # part 1 from other options
    prepare([corpus["path"]], corpus["vocab"], tmp_path / "o", other, progress=False, num_shards=3, shard_index=1)
    with pytest.raises(BertkitError, match="part-00001-of-00003/manifest.json: from another preparation"):
        merge_parts(tmp_path / "o")
    with pytest.raises(BertkitError, match="not --num-shards 4"):
        merge_parts(tmp_path / "o", num_shards=4)


def test_cli_prepares_parts_and_merges(corpus, tmp_path, capsys):
    from bertkit.cli import main

    common = ["prepare", "--input", str(corpus["path"]), "--tokenizer", str(corpus["vocab"]), "--quiet"]
    common += ["--out", str(tmp_path / "d"), "--dupe-factor", "1", "--workers", "1"]
    for i in (0, 1):
        assert main([*common, "--num-shards", "2", "--shard-index", str(i)]) == 0
    assert "part 1 of 2 (chunks [" in capsys.readouterr().out
    assert main(["prepare", "--merge", "--out", str(tmp_path / "d")]) == 0
    assert "2 parts merged" in capsys.readouterr().out
    assert main([*common]) == 0  # one machine's run of the same options: the merged data is it
    assert "up to date" in capsys.readouterr().out
    assert main([*common, "--num-shards", "2"]) != 0  # without --shard-index: a one-line error
    assert "--shard-index I go together" in capsys.readouterr().err
