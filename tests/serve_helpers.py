"""Tiny random models saved as the directories bertkit export / serve take: an encoder, a
pre-training checkpoint (MLM head) and fine-tuned task directories (task.json), on a hand-made
vocabulary, so export and serving tests run in seconds without shared data."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from bertkit.config import BertConfig
from bertkit.tokenization import Tokenizer

WORDS = (
    "the a film plot is was good great fine bad awful dull . , ? who where john mary lives in paris "
    "rome he she eats runs sleeps man dog cat sat on mat today and very capital of france food"
).split()
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS + ["##s"]
TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def tiny_config(**kw) -> BertConfig:
    base = dict(
        vocab_size=len(VOCAB), max_position_embeddings=64, hidden_size=32, num_attention_heads=2, intermediate_size=64
    )
    base.update(kw)
    return BertConfig.from_preset("tiny", **base)


def make_model_dir(root: Path, kind: str, seed: int = 0) -> Path:
    """``kind``: encoder | pretraining | classification | pair | tagging | qa | choice -> a model directory."""
    from bertkit.heads import (
        BertForMultipleChoice,
        BertForPreTraining,
        BertForQuestionAnswering,
        BertForSequenceClassification,
        BertForTokenClassification,
    )
    from bertkit.model import BertModel
    from bertkit.tasks import get_task
    from bertkit.tasks.checkpoints import save_task_model

    torch.manual_seed(seed)
    d = root / kind
    tok = Tokenizer(VOCAB)
    if kind == "encoder":
        BertModel(tiny_config()).save_pretrained(d, tokenizer=tok)
        return d
    if kind == "pretraining":
        BertForPreTraining(tiny_config()).save_pretrained(d, tokenizer=tok)
        return d
    labels = {"classification": ["neg", "pos"], "pair": ["no", "yes"], "tagging": TAGS, "qa": None, "choice": None}[
        kind
    ]
    head = {
        "classification": BertForSequenceClassification,
        "pair": BertForSequenceClassification,
        "tagging": BertForTokenClassification,
        "qa": BertForQuestionAnswering,
        "choice": BertForMultipleChoice,
    }[kind]
    cfg = tiny_config()
    if labels:
        cfg.set_labels(labels)
    task = (
        get_task(kind, max_seq_length=48)
        if kind != "qa"
        else get_task(kind, max_seq_length=48, doc_stride=16, max_query_length=16)
    )
    task.labels = labels
    d.mkdir(parents=True)
    save_task_model(d, head(cfg).eval(), tok, task)
    return d


@contextmanager
def running(predictor, **cfg):
    """A real uvicorn server for ``predictor`` on 127.0.0.1 (a free port), in a thread; yields
    ``(base_url, app)`` and stops the server (gracefully) on exit."""
    import uvicorn

    from bertkit.serve.config import ServeConfig
    from bertkit.serve.server import create_app

    app = create_app(predictor, ServeConfig(port=0, **cfg))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 60
    while not server.started:
        assert time.time() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(timeout=30)
