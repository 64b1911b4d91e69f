"""Fine-tuning code on the real shared data and the MiniLM checkpoint (skipped without them):
file counts as documented, SQuAD answers recoverable from real windows, embedding similarity
equal to transformers' mean pooling, and one short MiniLM run through the whole pipeline."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import require_shared

from bertkit.metrics import normalize_answer
from bertkit.tasks import get_task

pytestmark = pytest.mark.usefixtures("one_thread")


def test_shared_task_files_read_with_documented_counts():
    pol = get_task("classification").read(str(require_shared("tasks", "polarity", "train.tsv")))
    assert len(pol) == 3200 and get_task("classification").label_list(pol) == ["0", "1"]
    boolq = get_task("pair").read(str(require_shared("tasks", "boolq", "dev.jsonl")))
    assert len(boolq) == 1905 and sum(e.label == "true" for e in boolq) == 1204
    wnut = get_task("tagging").read(str(require_shared("tasks", "wnut16", "train.conll")))
    assert len(wnut) == 1915 and sum(len(s.words) for s in wnut) == 36887
    news = get_task("classification").read(str(require_shared("tasks", "news20", "dev.tsv")))
    assert len(news) == 1130 and len({e.label for e in news}) == 20
    qa = get_task("qa")
    disfl = qa.read(str(require_shared("tasks", "disflqa", "train.json")))
    assert len(disfl) == 675 and sum(q.is_impossible for q in disfl) == 204 and qa.settings["version_2"]


def test_disflqa_answers_survive_featurisation(minilm_dir):
    from bertkit.tokenization import Tokenizer

    tok = Tokenizer.from_pretrained(minilm_dir)
    task = get_task("qa", max_seq_length=192, doc_stride=64)
    questions = task.read(str(require_shared("tasks", "disflqa", "train.json")))
    feats = task.featurize(questions, tok, None, training=True)
    recovered: dict[str, set[str]] = {}
    for it, m, i in zip(feats.items, feats.meta, feats.example_index):
        if it["start_positions"]:
            c0 = m["offsets"][it["start_positions"] - m["ctx_start"]][0]
            c1 = m["offsets"][it["end_positions"] - m["ctx_start"]][1]
            recovered.setdefault(questions[i].qid, set()).add(questions[i].context[c0:c1])
    answerable = [q for q in questions if not q.is_impossible]
    assert len(recovered) == len(answerable)  # every answer lies inside at least one window
    exact = 0
    for q in answerable:
        gold = q.answers[0][0]
        assert all(gold in t for t in recovered[q.qid])  # the labelled pieces cover the answer
        exact += {normalize_answer(t) for t in recovered[q.qid]} == {normalize_answer(gold)}
    # the rest start or end inside a word piece (e.g. "Timucua" found inside "Timucuan")
    assert exact >= 0.97 * len(answerable)


def test_embedding_similarity_matches_transformers_mean_pooling(minilm_dir):
    transformers = pytest.importorskip("transformers")
    from bertkit.model import BertModel
    from bertkit.tasks.similarity import mean_pooled_embeddings
    from bertkit.tokenization import Tokenizer

    rows = require_shared("tasks", "lee-sts", "pairs.tsv").read_text("utf-8").splitlines()[1:4]
    texts = sorted({t for r in rows for t in r.split("\t")[:2]})
    ours, _ = mean_pooled_embeddings(
        BertModel.from_pretrained(minilm_dir),
        Tokenizer.from_pretrained(minilm_dir),
        texts,
        max_seq_length=256,
        batch_size=2,
    )  # sorted batches, input order
    hf_tok = transformers.AutoTokenizer.from_pretrained(str(minilm_dir))
    hf = transformers.AutoModel.from_pretrained(str(minilm_dir)).eval()
    enc = hf_tok(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
    assert (enc["input_ids"] != hf_tok.unk_token_id).float().mean() > 0.9  # a real vocabulary
    with torch.no_grad():
        h = hf(**enc).last_hidden_state
    m = enc["attention_mask"].unsqueeze(-1).float()
    theirs = ((h * m).sum(1) / m.sum(1)).numpy()
    np.testing.assert_allclose(ours, theirs, atol=2e-4)


def test_minilm_short_finetune_through_the_pipeline(minilm_dir, tmp_path):
    from bertkit.finetune import FinetuneConfig, evaluate, finetune

    pol = require_shared("tasks", "polarity")
    cfg = FinetuneConfig(
        task="classification",
        train=str(pol / "train.tsv"),
        dev=str(pol / "dev.tsv"),
        init=str(minilm_dir),
        out=str(tmp_path / "o"),
        max_train_examples=32,
        max_eval_examples=16,
        max_steps=2,
        batch_size=16,
        max_seq_length=32,
        progress=False,
        device="cpu",
    )
    r = finetune(cfg)
    assert r["data"]["train"]["examples"] == 32 and r["selected"]["steps"] == 2
    assert json.loads((tmp_path / "o" / "config.json").read_text())["hidden_size"] == 384
    got = evaluate(str(tmp_path / "o"), str(pol / "dev.tsv"), progress=False)
    assert 0.0 <= got["accuracy"] <= 1.0 and set(got) >= {"accuracy", "f1", "mcc"}
