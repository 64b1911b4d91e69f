"""bertkit.inference against the reference implementations (test-only dependencies):
sentence-transformers' encode on the real MiniLM checkpoint, and transformers' pipelines."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import require_shared

import bertkit

pytestmark = pytest.mark.usefixtures("one_thread")


def corpus_sentences(n: int) -> list[str]:
    """``n`` sentences of the shared corpus (sample.txt), spread over it: short and long ones."""
    lines = [x for x in require_shared("corpus", "sample.txt").read_text("utf-8").splitlines() if x.strip()]
    step = max(1, len(lines) // n)
    return lines[::step][:n]


def test_minilm_embeddings_equal_sentence_transformers(minilm_dir):
    st = pytest.importorskip("sentence_transformers")
    texts = corpus_sentences(32)
    assert max(map(len, texts)) > 4 * min(map(len, texts))  # variable lengths: padded batches
    ref = st.SentenceTransformer(str(minilm_dir), device="cpu").encode(
        texts, normalize_embeddings=True, batch_size=16, convert_to_numpy=True
    )
    got = bertkit.load(minilm_dir, device="cpu", max_tokens=2048).embed(texts, pooling="mean", normalize=True)
    assert got.shape == ref.shape == (32, 384)
    np.testing.assert_allclose(got, ref, atol=1e-5, rtol=0)


# ------------------------------------------------------------------ tiny models for the pipelines
WORDS = (
    "the a film plot is was good great fine bad awful dull . , ? who where john mary lives in paris "
    "rome he she eats runs sleeps man dog cat sat on mat today and very new york city does live"
).split()
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS + ["##s", "##y"]


def tiny_config():
    from bertkit.config import BertConfig

    return BertConfig.from_preset(
        "tiny",
        vocab_size=len(VOCAB),
        max_position_embeddings=64,
        hidden_size=32,
        num_attention_heads=2,
        intermediate_size=64,
        num_hidden_layers=2,
    )


def hf_tokenizer(directory):
    """transformers' tokenizer of a bertkit directory, loaded as users load it (from_pretrained)."""
    transformers = pytest.importorskip("transformers")
    return transformers.AutoTokenizer.from_pretrained(str(directory))


def assert_real_tokens(tok, texts):
    """The reference sees real word pieces, not [UNK] (a tokenizer-loading pitfall would hide it)."""
    for t in texts:
        ids = tok(t)["input_ids"]
        assert tok.unk_token_id not in ids, (t, tok.convert_ids_to_tokens(ids))


@pytest.fixture(scope="module")
def mlm_dir(tmp_path_factory):
    """A tiny BERT pre-trained for 60 MLM steps on made-up sentences (peaked, not uniform, outputs)."""
    import random

    import torch

    from bertkit.heads import BertForPreTraining, pretraining_loss
    from bertkit.tokenization import Tokenizer

    tok = Tokenizer(VOCAB)
    torch.manual_seed(0)
    rng = random.Random(0)
    model = BertForPreTraining(tiny_config())
    sents = [
        f"{rng.choice(['john', 'mary'])} lives in {rng.choice(['paris', 'rome', 'new york'])} today ."
        for _ in range(64)
    ] + [f"the {rng.choice(['dog', 'cat', 'man'])} sat on the mat ." for _ in range(64)]
    ids = [tok.encode(s).input_ids for s in sents]
    T = max(map(len, ids))
    x = torch.tensor([i + [0] * (T - len(i)) for i in ids])
    mask = (x != 0).long()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(60):
        pick = (torch.rand(x.shape) < 0.2) & (x > 4)
        inp = torch.where(pick, torch.full_like(x, tok.mask_id), x)
        labels = torch.where(pick, x, torch.full_like(x, -100))
        loss, _ = pretraining_loss(model(inp, mask), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    d = tmp_path_factory.mktemp("mlm") / "ckpt"
    model.eval().save_pretrained(d, tokenizer=tok)
    return d


def test_fill_mask_equals_transformers_pipeline(mlm_dir):
    transformers = pytest.importorskip("transformers")
    texts = ["john lives in [MASK] today .", "the [MASK] sat on the mat .", "mary [MASK] in rome [MASK] ."]
    tok = hf_tokenizer(mlm_dir)
    assert_real_tokens(tok, [t.replace("[MASK]", "the") for t in texts])
    pipe = transformers.pipeline(
        "fill-mask", model=transformers.BertForMaskedLM.from_pretrained(str(mlm_dir)), tokenizer=tok, device="cpu"
    )
    got = bertkit.load(mlm_dir, device="cpu").fill_mask(texts, top_k=5)
    for text, mine in zip(texts, got):
        ref = pipe(text, top_k=5)
        ref = ref if isinstance(ref[0], list) else [ref]  # one list per mask
        assert len(ref) == len(mine["masks"]) == text.count("[MASK]")
        for ref_mask, my_mask in zip(ref, mine["masks"]):
            ref_p = [r["score"] for r in ref_mask]
            np.testing.assert_allclose([c["score"] for c in my_mask], ref_p, atol=1e-5, rtol=0)
            for r, c in zip(ref_mask, my_mask):  # same ids, except between probabilities tied within 1e-6
                assert r["token"] == c["token_id"] or abs(r["score"] - c["score"]) < 1e-6
                assert r["token_str"] == c["token"] or r["token"] != c["token_id"]
    assert max(c["score"] for c in got[0]["masks"][0]) > 0.2  # trained (uniform would be 1/68)


def ner_sentences(n, seed):
    import random

    rng = random.Random(seed)
    out = []
    for _ in range(n):
        who = rng.choice([[("john", "B-person")], [("mary", "B-person")], [("john", "B-person"), ("mary", "I-person")]])
        where = rng.choice([[("paris", "B-loc")], [("new", "B-loc"), ("york", "I-loc"), ("city", "I-loc")]])
        out.append(who + [("lives", "O"), ("in", "O")] + where + [("today", "O"), (".", "O")])
    return out


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    import torch

    from bertkit.model import BertModel
    from bertkit.tokenization import Tokenizer

    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("base") / "tiny"
    BertModel(tiny_config()).save_pretrained(d, tokenizer=Tokenizer(VOCAB))
    return d


def finetune_tiny(base_dir, tmp_path, task, train, epochs, **kw):
    from bertkit.finetune import FinetuneConfig, finetune

    out = tmp_path / task
    finetune(
        FinetuneConfig(
            task=task,
            train=train,
            dev=train,
            init=str(base_dir),
            out=str(out),
            lr=3e-3,
            batch_size=8,
            epochs=epochs,
            warmup_ratio=0.0,
            progress=False,
            device="cpu",
            **kw,
        )
    )
    return out


def test_tagging_entities_equal_token_classification_pipeline(base_dir, tmp_path):
    transformers = pytest.importorskip("transformers")
    conll = tmp_path / "train.conll"
    conll.write_text("\n".join("".join(f"{w}\t{t}\n" for w, t in s) for s in ner_sentences(24, 0)), "utf-8")
    out = finetune_tiny(base_dir, tmp_path, "tagging", str(conll), epochs=8)
    texts = [
        "john mary lives in new york city today .",
        "Mary lives in Paris, today .",
        "the dogs sat in new york , john runs in rome .",
        "johny cats zzz lives in paris .",  # pieces (##y, ##s) and an unknown word
    ]
    tok = hf_tokenizer(out)
    assert_real_tokens(tok, texts[:3])
    pipe = transformers.pipeline(
        "token-classification",
        model=transformers.AutoModelForTokenClassification.from_pretrained(str(out)),
        tokenizer=tok,
        aggregation_strategy="simple",
        device="cpu",
    )
    predictor = bertkit.load(out, device="cpu", max_tokens=40)
    got = predictor.predict(texts)
    n_entities = 0
    for text, mine in zip(texts, got):
        ref = pipe(text)
        assert [(e["entity_group"], e["word"], e["start"], e["end"]) for e in ref] == [
            (e["entity_group"], e["word"], e["start"], e["end"]) for e in mine["entities"]
        ], text
        np.testing.assert_allclose([e["score"] for e in mine["entities"]], [float(e["score"]) for e in ref], atol=1e-5)
        n_entities += len(ref)
        assert [w["word"] for w in mine["words"]] == [text[w["start"] : w["end"]] for w in mine["words"]]
    assert n_entities >= 4  # the comparison covered real entities
    # per-word labels are the task's own prediction (first piece), as `bertkit predict` gives for CoNLL
    words = tmp_path / "words.conll"
    words.write_text("\n".join("".join(f"{w['word']}\n" for w in r["words"]) for r in got), "utf-8")
    _, per_word = predictor.predict_examples(str(words), progress=False)
    assert per_word == [[w["label"] for w in r["words"]] for r in got]


def squad_file(path, n, seed):
    import json
    import random

    rng = random.Random(seed)
    paras = []
    for i in range(n):
        who, where = rng.choice(["john", "mary"]), rng.choice(["paris", "rome", "new york city"])
        ctx = f"today {who} lives in {where} and the dog sat on the mat ."
        qas = [
            {
                "id": f"q{i}a",
                "question": "who lives in " + where + " ?",
                "answers": [{"text": who, "answer_start": ctx.index(who)}],
            },
            {
                "id": f"q{i}b",
                "question": f"where does {who} live ?",
                "answers": [{"text": where, "answer_start": ctx.index(where)}],
            },
        ]
        paras.append({"context": ctx, "qas": qas})
    path.write_text(json.dumps({"version": "v1.1", "data": [{"title": "t", "paragraphs": paras}]}), "utf-8")
    return str(path)


def test_qa_answers_equal_transformers_qa_decoding(base_dir, tmp_path):
    """transformers 5 dropped the question-answering pipeline; its span decoding lives on as
    ``select_starts_ends`` (used by the document-QA pipeline): the reference here is transformers'
    model + tokenizer + that decoding, with the old pipeline's p_mask (context tokens and [CLS])."""
    transformers = pytest.importorskip("transformers")
    from transformers.pipelines.document_question_answering import select_starts_ends

    out = finetune_tiny(
        base_dir, tmp_path, "qa", squad_file(tmp_path / "train.json", 24, 0), epochs=4, max_seq_length=48
    )
    pairs = [
        ("who lives in rome ?", "today mary lives in rome and the dog sat on the mat ."),
        ("where does john live ?", "today john lives in new york city and the dog sat on the mat ."),
        ("who sat on the mat ?", "the dog sat on the mat and john lives in paris today ."),
    ]
    tok = hf_tokenizer(out)
    assert_real_tokens(tok, [q + " " + c for q, c in pairs])
    model = transformers.AutoModelForQuestionAnswering.from_pretrained(str(out)).eval()
    got = bertkit.load(out, device="cpu").predict(pairs)
    import torch

    compared = 0
    for (q, c), mine in zip(pairs, got):
        enc = tok(q, c, return_offsets_mapping=True, return_tensors="pt")
        with torch.no_grad():
            o = model(
                input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], token_type_ids=enc["token_type_ids"]
            )
        seq = enc.sequence_ids(0)
        p_mask = np.array([[0 if s == 1 else 1 for s in seq]])
        p_mask[0, 0] = 0  # [CLS], as the question-answering pipeline
        starts, ends, scores, _ = select_starts_ends(
            o.start_logits.numpy(), o.end_logits.numpy(), p_mask, enc["attention_mask"].numpy(), max_answer_len=30
        )
        offsets = enc["offset_mapping"][0].tolist()
        s, e = offsets[int(starts[0])][0], offsets[int(ends[0])][1]
        if mine["answer"] == "":
            continue
        compared += 1
        assert (mine["answer"], mine["start"], mine["end"]) == (c[s:e], s, e)
        assert mine["score"] == pytest.approx(float(scores[0]), abs=1e-5)
    assert compared == len(pairs)  # a v1.1 model always answers
