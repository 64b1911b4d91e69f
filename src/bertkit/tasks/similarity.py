"""Sentence similarity from embeddings, without training (STS-B-style files, e.g. lee-sts).

Each text is encoded by the checkpoint's encoder and mean-pooled over its real tokens (padding
excluded); the prediction for a pair is the cosine of the two vectors. Metrics: Pearson and
Spearman correlation against the gold ``score``. Used by ``bertkit evaluate --task similarity``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from bertkit import metrics, runtime
from bertkit.model import BertModel
from bertkit.settings import SIMILARITY_MAX_SEQ_LENGTH
from bertkit.tasks.base import build_pair
from bertkit.tasks.batching import collate
from bertkit.tasks.classification import read_text_examples
from bertkit.tasks.regression import SCORE_COLUMNS
from bertkit.tokenization import Tokenizer


@torch.no_grad()
def mean_pooled_embeddings(
    model: Any,
    tokenizer: Any,
    texts: list[str],
    max_seq_length: int = SIMILARITY_MAX_SEQ_LENGTH,
    batch_size: int = 32,
    progress: bool = False,
) -> tuple[np.ndarray, int]:
    """``(embeddings (N, H), n_truncated)``: mean of the last hidden states over real tokens.
    Texts are batched in order of length (less padding); rows come back in input order."""
    ids = tokenizer.tokenize_ids_batch(texts)
    items, truncated = [], 0
    for a in ids:
        seq, types, cut = build_pair(a, None, max_seq_length, tokenizer.cls_id, tokenizer.sep_id)
        truncated += cut
        items.append({"input_ids": seq, "token_type_ids": types})
    model.eval()
    device = next(model.parameters()).device
    order = np.argsort([len(it["input_ids"]) for it in items], kind="stable")
    out = np.zeros((len(items), model.config.hidden_size), dtype=np.float32)
    for s in tqdm(range(0, len(items), batch_size), desc="embed", disable=not progress, leave=False, unit="batch"):
        idx = order[s : s + batch_size]
        batch = collate([items[i] for i in idx], tokenizer.pad_id)
        mask = batch["attention_mask"].to(device)
        hidden = model(batch["input_ids"].to(device), mask, batch["token_type_ids"].to(device)).last_hidden_state
        m = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
        out[idx] = ((hidden * m).sum(1) / m.sum(1).clamp_min(1.0)).float().cpu().numpy()  # (B, H)
    return out, truncated


def embedding_similarity(
    model_dir: str,
    data: str,
    max_seq_length: int = SIMILARITY_MAX_SEQ_LENGTH,
    batch_size: int = 32,
    text_column: str | None = None,
    text_pair_column: str | None = None,
    label_column: str | None = None,
    header: bool | None = None,
    progress: bool = False,
) -> dict[str, float]:
    """Pearson / Spearman of cosine(mean-pooled embeddings) against the file's scores."""
    examples = read_text_examples(
        data,
        True,
        text_column,
        text_pair_column,
        label_column,
        SCORE_COLUMNS,
        labelled=True,
        as_float=True,
        header=header is not False,
    )
    tok = Tokenizer.from_pretrained(model_dir)
    model = BertModel.from_pretrained(model_dir).to(runtime.choose_device("auto"))
    unique = sorted({e.text for e in examples} | {e.text_pair for e in examples})
    vecs, truncated = mean_pooled_embeddings(model, tok, unique, max_seq_length, batch_size, progress)
    if truncated:
        runtime.log(f"{data}: {truncated} of {len(unique)} texts truncated (max_seq_length {max_seq_length})")
    vecs = vecs / np.linalg.norm(vecs, axis=1, keepdims=True).clip(min=1e-12)
    index = {t: i for i, t in enumerate(unique)}
    cos = [float(vecs[index[e.text]] @ vecs[index[e.text_pair]]) for e in examples]
    gold = [e.label for e in examples]
    return {
        "pearson": metrics.pearson(cos, gold),
        "spearman": metrics.spearman(cos, gold),
        "pairs": len(examples),
        "texts": len(unique),
    }
