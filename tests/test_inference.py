"""bertkit.load / Predictor on tiny hand-made models: what each kind of directory can do, batching
that does not change results, rows in input order, fill-mask, task predictions, the embed and
fill-mask commands, and one-line errors."""

from __future__ import annotations

import io
import json
import sys

import numpy as np
import pytest
import torch

import bertkit
from bertkit.cli import main
from bertkit.config import BertConfig
from bertkit.embedding_files import count_input_texts, iter_input_texts, npy_header
from bertkit.errors import BertkitError
from bertkit.heads import BertForPreTraining, BertForSequenceClassification
from bertkit.model import BertModel
from bertkit.tokenization import Tokenizer

WORDS = (
    "the a film plot is was good great fine bad awful dull . , ? who where john mary lives in paris "
    "rome he she eats runs sleeps man dog cat sat on mat today and very"
).split()
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS + ["##s"]
TEXTS = [
    "the film was good .",
    "john lives in paris and mary lives in rome today .",
    "dogs",
    "the cat sat on the mat , the dog sat on the man and the man runs .",
    "",
    "who eats ?",
    "a very very very dull plot",
    "she sleeps .",
]

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_config(**kw) -> BertConfig:
    base = dict(
        vocab_size=len(VOCAB),
        max_position_embeddings=64,
        hidden_size=32,
        num_attention_heads=2,
        intermediate_size=64,
        num_hidden_layers=2,
    )
    base.update(kw)
    return BertConfig.from_preset("tiny", **base)


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    """An encoder, a pre-training checkpoint and a classification task directory (random weights)."""
    root = tmp_path_factory.mktemp("inference")
    tok = Tokenizer(VOCAB)
    torch.manual_seed(0)
    BertModel(tiny_config()).save_pretrained(root / "encoder", tokenizer=tok)
    BertForPreTraining(tiny_config()).save_pretrained(root / "pretrain", tokenizer=tok)
    cfg = tiny_config()
    cfg.set_labels(["neg", "pos", "neutral"])
    BertForSequenceClassification(cfg).save_pretrained(root / "classifier", tokenizer=tok)
    return {k: str(root / k) for k in ("encoder", "pretrain", "classifier")}


def test_kinds_and_capabilities(dirs):
    enc = bertkit.load(dirs["encoder"], device="cpu")
    assert enc.kind == "encoder" and enc.capabilities == ("embed", "similarity")
    lm = bertkit.load(dirs["pretrain"], device="cpu")
    assert lm.kind == "pretraining" and "fill_mask" in lm.capabilities
    clf = bertkit.load(dirs["classifier"], device="cpu")  # a BertForSequenceClassification dir, no task.json
    assert clf.kind == "task" and clf.task_name == "classification" and clf.labels == ["neg", "pos", "neutral"]
    # a method the model cannot do: one clear error
    with pytest.raises(BertkitError, match="fill-mask needs a masked-LM head"):
        enc.fill_mask(["the [MASK] ."])
    with pytest.raises(BertkitError, match="predict needs a fine-tuned task model"):
        lm.predict(["the film ."])
    with pytest.raises(BertkitError, match="unknown value 'sum'"):
        enc.embed(["a"], pooling="sum")
    with pytest.raises(BertkitError, match="not one string"):
        enc.embed("a film")


@pytest.mark.parametrize("pooling", ["mean", "cls", "max"])
def test_batched_embeddings_equal_one_at_a_time(dirs, pooling):
    # tiny token budget: many batches of mixed lengths, padded; results within 1e-5 of unbatched
    m = bertkit.load(dirs["pretrain"], device="cpu", max_tokens=40, batch_size=3)
    batched = m.embed(TEXTS, pooling=pooling)
    assert batched.dtype == np.float32 and batched.shape == (len(TEXTS), 32)
    single = np.stack([m.embed([t], pooling=pooling)[0] for t in TEXTS])
    np.testing.assert_allclose(batched, single, atol=1e-5, rtol=0)
    # rows come back in input order: reversing the inputs reverses the rows
    np.testing.assert_allclose(m.embed(TEXTS[::-1], pooling=pooling), batched[::-1], atol=1e-5, rtol=0)


def test_pooling_definitions(dirs):
    m = bertkit.load(dirs["encoder"], device="cpu")
    model = BertModel.from_pretrained(dirs["encoder"])
    enc = Tokenizer(VOCAB).encode(TEXTS[1])
    with torch.no_grad():
        h = model(torch.tensor([enc.input_ids])).last_hidden_state[0]  # (T, H)
    np.testing.assert_allclose(m.embed([TEXTS[1]], pooling="mean")[0], h.mean(0).numpy(), atol=1e-5)
    np.testing.assert_allclose(m.embed([TEXTS[1]], pooling="cls")[0], h[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(m.embed([TEXTS[1]], pooling="max")[0], h.max(0).values.numpy(), atol=1e-5)
    unit = m.embed(TEXTS, normalize=True)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-6)
    sim = m.similarity(TEXTS[:2], TEXTS)
    assert sim.shape == (2, len(TEXTS))
    np.testing.assert_allclose(sim, unit[:2] @ unit.T, atol=1e-6)
    np.testing.assert_allclose(np.diag(sim[:, :2]), 1.0, atol=1e-6)


def test_embed_token_ids_equals_embed(dirs):
    """What bertkit serve calls with the ids it counted: the same rows as embed(texts), truncation
    included; ids outside the vocabulary are one clear error."""
    m = bertkit.load(dirs["encoder"], device="cpu")
    ids = m.tokenizer.tokenize_ids_batch(TEXTS)
    for pooling in ("mean", "cls"):
        np.testing.assert_array_equal(m.embed_token_ids(ids, pooling=pooling), m.embed(TEXTS, pooling=pooling))
    np.testing.assert_array_equal(m.embed_token_ids(ids, max_length=4), m.embed(TEXTS, max_length=4))
    with pytest.raises(BertkitError, match="input 2: token ids must be in 0.."):
        m.embed_token_ids([ids[0], [1, 10**6]])


def test_iter_embed_streams_in_order(dirs):
    m = bertkit.load(dirs["encoder"], device="cpu")
    chunks = list(m.iter_embed(iter(TEXTS), chunk_size=3))
    assert [len(c) for c, _ in chunks] == [3, 3, 2] and sum((c for c, _ in chunks), []) == TEXTS
    np.testing.assert_allclose(np.concatenate([v for _, v in chunks]), m.embed(TEXTS), atol=1e-5, rtol=0)


def test_fill_mask(dirs):
    m = bertkit.load(dirs["pretrain"], device="cpu", max_tokens=30, batch_size=2)
    texts = ["the [MASK] sat on the mat .", "john [MASK] in [MASK] .", "[MASK]"]
    out = m.fill_mask(texts, top_k=3)
    assert [r["text"] for r in out] == texts and [len(r["masks"]) for r in out] == [1, 2, 1]
    model = BertForPreTraining.from_pretrained(dirs["pretrain"])
    tok = Tokenizer(VOCAB)
    for text, r in zip(texts, out):
        ids = tok.encode(text).input_ids
        with torch.no_grad():
            probs = model(torch.tensor([ids])).mlm_logits[0].softmax(-1)  # (T, V)
        rows = [i for i, t in enumerate(ids) if t == tok.mask_id]
        for pos, cands in zip(rows, r["masks"]):
            p, i = probs[pos].topk(3)
            assert [c["token_id"] for c in cands] == i.tolist()
            np.testing.assert_allclose([c["score"] for c in cands], p.numpy(), atol=1e-6)
            assert [c["token"] for c in cands] == tok.convert_ids_to_tokens(i.tolist())
        filled = text
        for cands in r["masks"]:
            t = cands[0]["token"]
            filled = filled.replace("[MASK]", t[2:] if t.startswith("##") else t, 1)
        assert r["filled"].replace(" ", "") == filled.replace(" ", "")
    with pytest.raises(BertkitError, match=r"input 2 has no \[MASK\] token"):
        m.fill_mask(["the [MASK] .", "no mask here"])


def test_predict_classification(dirs):
    m = bertkit.load(dirs["classifier"], device="cpu", max_tokens=24, batch_size=2)
    inputs = TEXTS[:4] + [("the film", "was good")]
    out = m.predict(inputs)
    model = BertForSequenceClassification.from_pretrained(dirs["classifier"])
    tok = Tokenizer(VOCAB)
    for x, r in zip(inputs, out):
        enc = tok.encode(x) if isinstance(x, str) else tok.encode(x[0], pair=x[1])
        with torch.no_grad():
            p = model(torch.tensor([enc.input_ids]), token_type_ids=torch.tensor([enc.token_type_ids]))[0].softmax(-1)
        assert set(r["probabilities"]) == {"neg", "pos", "neutral"}
        np.testing.assert_allclose([r["probabilities"][k] for k in ("neg", "pos", "neutral")], p.numpy(), atol=1e-5)
        assert r["label"] == ["neg", "pos", "neutral"][int(p.argmax())]
        assert r["probability"] == pytest.approx(float(p.max()), abs=1e-5)
    with pytest.raises(BertkitError, match="input 1 must be a text or a"):
        m.predict([3])


def test_input_files(tmp_path):
    (tmp_path / "a.txt").write_text("one\n\nthree", "utf-8")
    (tmp_path / "b.jsonl").write_text('{"text": "four"}\n\n{"text": "five", "x": 1}\n', "utf-8")
    (tmp_path / "c.tsv").write_text("id\tsentence\n1\tsix\n2\tseven\n", "utf-8")
    paths = [str(tmp_path / n) for n in ("a.txt", "b.jsonl", "c.tsv")]
    assert list(iter_input_texts(paths)) == ["one", "", "three", "four", "five", "six", "seven"]
    assert count_input_texts(paths) == 7
    assert list(iter_input_texts([paths[2]], column="0")) == ["1", "2"]
    (tmp_path / "d.jsonl").write_text('{"text": "x"}\n{"body": "y"}\n', "utf-8")
    with pytest.raises(BertkitError, match=r"d.jsonl:2: no text field 'text'"):
        list(iter_input_texts([str(tmp_path / "d.jsonl")]))
    (tmp_path / "e.tsv").write_text("text\tlabel\nx\t1\ny\n", "utf-8")
    with pytest.raises(BertkitError, match=r"e.tsv:3: 1 tab-separated fields, the header has 2"):
        list(iter_input_texts([str(tmp_path / "e.tsv")]))
    with pytest.raises(BertkitError, match="unknown input format"):
        list(iter_input_texts([str(tmp_path / "f.csv")]))


def test_npy_header_reads_back(tmp_path):
    for rows, dim in [(0, 4), (3, 4), (12345678901, 1024)]:
        h = npy_header(rows, dim, 128)
        assert len(h) == 128
        p = tmp_path / "x.npy"
        p.write_bytes(h + np.arange(rows * dim if rows < 100 else 0, dtype="<f4").tobytes())
        if rows < 100:
            assert np.load(p).shape == (rows, dim)


def test_cli_embed_and_fill_mask(dirs, tmp_path, capsys, monkeypatch):
    src = tmp_path / "in.txt"
    src.write_text("\n".join(TEXTS) + "\n", "utf-8")
    out = tmp_path / "e.npy"
    argv = ["embed", "--model", dirs["pretrain"], "--input", str(src), "--out", str(out), "--no-progress"]
    assert main(argv + ["--normalize", "--chunk-size", "3", "--max-tokens", "32"]) == 0
    m = bertkit.load(dirs["pretrain"], device="cpu")
    np.testing.assert_allclose(np.load(out), m.embed(TEXTS, normalize=True), atol=1e-5, rtol=0)
    assert f"wrote {len(TEXTS)} embeddings" in capsys.readouterr().out
    # an existing output is refused (before the model loads), and left as it was
    before = out.read_bytes()
    assert main(argv) == 2
    assert "e.npy: exists; pass --overwrite" in capsys.readouterr().err and out.read_bytes() == before
    assert main(argv + ["--overwrite", "--pooling", "max"]) == 0  # asked for: replaced
    np.testing.assert_allclose(np.load(out), m.embed(TEXTS, pooling="max"), atol=1e-5, rtol=0)
    assert main(argv[:-3] + ["--out", str(src), "--overwrite"]) == 2  # never an input, --overwrite or not
    assert "is also an input" in capsys.readouterr().err and src.read_text("utf-8").startswith(TEXTS[0])
    # .jsonl output: text + embedding per line
    assert main(argv[:-3] + ["--out", str(tmp_path / "e.jsonl"), "--pooling", "cls", "--no-progress"]) == 0
    recs = [json.loads(x) for x in (tmp_path / "e.jsonl").read_text().splitlines()]
    assert [r["text"] for r in recs] == TEXTS
    np.testing.assert_allclose([r["embedding"] for r in recs], m.embed(TEXTS, pooling="cls"), atol=1e-5)
    # --input - reads stdin, one text per line (progress on: a bar without a total)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(("\n".join(TEXTS) + "\n").encode())))
    assert main(["embed", "--model", dirs["pretrain"], "--input", "-", "--out", str(tmp_path / "s.npy")]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "s.npy"), m.embed(TEXTS), atol=1e-5, rtol=0)
    # a bad input line: one error line, no output file
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a"}\n{"text": 3}\n', "utf-8")
    assert main(["embed", "--model", dirs["pretrain"], "--input", str(bad), "--out", str(tmp_path / "b.npy")]) == 2
    assert "bad.jsonl:2: no text field" in capsys.readouterr().err and not (tmp_path / "b.npy").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left behind
    # fill-mask: one JSON line per text
    capsys.readouterr()
    assert main(["fill-mask", "--model", dirs["pretrain"], "--top-k", "2", "the [MASK] .", "[MASK] runs"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert lines == m.fill_mask(["the [MASK] .", "[MASK] runs"], top_k=2)
    assert main(["fill-mask", "--model", dirs["encoder"], "the [MASK] ."]) == 2
    assert "fill-mask needs a masked-LM head" in capsys.readouterr().err


def test_streaming_reads_lazily(dirs, tmp_path):
    """Inputs larger than memory: texts are read as they are embedded, a chunk at a time."""
    m = bertkit.load(dirs["encoder"], device="cpu")
    pulled = []

    def texts():
        for i in range(10):
            pulled.append(i)
            yield TEXTS[i % len(TEXTS)]

    stream = m.iter_embed(texts(), chunk_size=4)
    chunk, vectors = next(stream)
    assert len(chunk) == 4 and vectors.shape == (4, 32) and len(pulled) == 4  # nothing read ahead
    assert [len(c) for c, _ in stream] == [4, 2] and len(pulled) == 10
    big = tmp_path / "big.txt"
    big.write_text("a film\n" * 5, "utf-8")
    lines = iter_input_texts([str(big)])
    assert next(lines) == "a film"  # a generator over the file, not a list of it


def test_predict_regression_and_choice(tmp_path):
    from bertkit.heads import BertForMultipleChoice
    from bertkit.tasks.base import build_pair

    tok = Tokenizer(VOCAB)
    torch.manual_seed(1)
    BertForSequenceClassification(tiny_config(num_labels=1)).save_pretrained(tmp_path / "reg", tokenizer=tok)
    BertForMultipleChoice(tiny_config()).save_pretrained(tmp_path / "choice", tokenizer=tok)
    reg = bertkit.load(tmp_path / "reg", device="cpu")
    assert reg.task_name == "regression"
    out = reg.predict(["the film was good .", ("john lives", "in paris")])
    model = BertForSequenceClassification.from_pretrained(tmp_path / "reg")
    with torch.no_grad():
        want = model(torch.tensor([tok.encode("the film was good .").input_ids]))[0, 0]
    assert set(out[0]) == {"score"} and out[0]["score"] == pytest.approx(float(want), abs=1e-5)
    ch = bertkit.load(tmp_path / "choice", device="cpu")
    endings = ["eats .", "sleeps .", "runs ."]
    got = ch.predict([("the man is very good .", endings), {"context": "a dog", "start": "he", "endings": endings}])
    model = BertForMultipleChoice.from_pretrained(tmp_path / "choice")
    a = tok.tokenize_ids_batch(["the man is very good ."])[0]
    seqs = [build_pair(a, b, 64, tok.cls_id, tok.sep_id) for b in tok.tokenize_ids_batch(endings)]
    T = max(len(s) for s, _, _ in seqs)
    ids = torch.tensor([[s + [0] * (T - len(s)) for s, _, _ in seqs]])
    types = torch.tensor([[t + [0] * (T - len(t)) for _, t, _ in seqs]])
    with torch.no_grad():
        p = model(ids, (ids != 0).long(), types)[0].softmax(-1)
    assert got[0]["choice"] == int(p.argmax()) and got[0]["probabilities"] == pytest.approx(p.tolist(), abs=1e-5)
    assert sum(got[1]["probabilities"]) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(BertkitError, match="needs at least two endings"):
        ch.predict([("ctx", ["only one"])])
    with pytest.raises(BertkitError, match="input 1 must be"):  # a non-text start: was a TypeError
        ch.predict([{"context": "a dog", "start": 5, "endings": endings}])
    # inputs with different numbers of endings in one call (a server merges requests): each gets
    # its own choices (the batch took the first input's count: extra padding choices, or a crash)
    mixed = [("a dog", endings[:2]), ("the man is very good .", endings), ("a film", endings[1:])]
    for order in (mixed, mixed[::-1]):
        together = ch.predict(order)
        for x, g in zip(order, together):
            alone = ch.predict([x])[0]
            assert len(g["probabilities"]) == len(x[1]) and g["choice"] == alone["choice"]
            assert g["probabilities"] == pytest.approx(alone["probabilities"], abs=1e-5)
