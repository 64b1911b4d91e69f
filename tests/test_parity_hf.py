"""Parity with transformers (the test oracle): real checkpoint, every head, both directions."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import require_shared

from bertkit import (
    BertConfig,
    BertForMultipleChoice,
    BertForPreTraining,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
)

transformers = pytest.importorskip("transformers")

TOL = 1e-5


def real_sentences(n: int = 8) -> list[str]:
    """Sentences of mixed length from the shared corpus sample."""
    path = require_shared("corpus", "sample.txt")
    lines = [s for s in path.read_text(encoding="utf-8").splitlines() if s.strip()]
    picked = sorted(lines[:200], key=len)
    step = len(picked) // n
    return [picked[i * step][:400] for i in range(n)]


def hf_config(cfg: BertConfig):
    d = cfg.to_dict()
    return transformers.BertConfig(**d)


def randomise(model: torch.nn.Module, seed: int = 0) -> None:
    """Give every parameter (biases, LayerNorm too) a random value, so nothing matches by luck."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1 + (1.0 if p.dim() == 1 and p.numel() else 0))


def maxdiff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


# --------------------------------------------------------------------------- real checkpoint
def test_minilm_matches_transformers(minilm_dir):
    tok = transformers.AutoTokenizer.from_pretrained(minilm_dir)
    sents = real_sentences()
    enc = tok(sents, padding=True, truncation=True, max_length=128, return_tensors="pt")
    lengths = enc["attention_mask"].sum(1)
    assert lengths.min() < lengths.max()  # mixed lengths, padding present
    unk_rate = (enc["input_ids"] == tok.unk_token_id).float().sum() / lengths.sum()
    assert unk_rate < 0.01  # the oracle tokenizer really tokenised the text

    ours = BertModel.from_pretrained(minilm_dir)
    theirs = transformers.BertModel.from_pretrained(minilm_dir, attn_implementation="sdpa").eval()
    with torch.no_grad():
        a = ours(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"])
        b = theirs(**enc)
    # Compared at the real tokens: outputs at [PAD] positions carry no meaning and differ by
    # ~1.5e-5 with kernel rounding (transformers' own eager and sdpa paths differ there too).
    real = enc["attention_mask"].bool()
    assert maxdiff(a.last_hidden_state[real], b.last_hidden_state[real]) <= TOL
    assert maxdiff(a.pooler_output, b.pooler_output) <= TOL


# --------------------------------------------------------------------------- heads
def tiny_cfg(cls: type) -> BertConfig:
    # QA has exactly two outputs (start, end); transformers sizes qa_outputs by num_labels.
    labels = 2 if cls is BertForQuestionAnswering else 3
    return BertConfig.from_preset("tiny", vocab_size=200, max_position_embeddings=40, num_labels=labels)


def inputs(B=3, T=13, V=200):
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(1, V, (B, T), generator=g)
    mask = torch.ones(B, T, dtype=torch.long)
    mask[1, 9:] = 0
    mask[2, 4:] = 0
    ids[mask == 0] = 0
    types = (torch.arange(T) >= 6).long().expand(B, T).clone() * mask
    return ids, mask, types


def compare_outputs(name, ours, theirs, ids, mask, types):
    with torch.no_grad():
        if name == "BertForMultipleChoice":
            ids, mask, types = (t.view(1, 3, -1) for t in (ids, mask, types))
        a = ours(ids, mask, types)
        b = theirs(input_ids=ids, attention_mask=mask, token_type_ids=types)
    if name == "BertModel":
        pairs = [(a.last_hidden_state, b.last_hidden_state), (a.pooler_output, b.pooler_output)]
    elif name == "BertForPreTraining":
        pairs = [(a.mlm_logits, b.prediction_logits), (a.nsp_logits, b.seq_relationship_logits)]
    elif name == "BertForQuestionAnswering":
        pairs = [(a.start_logits, b.start_logits), (a.end_logits, b.end_logits)]
    else:
        pairs = [(a, b.logits)]
    for x, y in pairs:
        assert x.shape == y.shape
        assert maxdiff(x, y) <= TOL, name


CLASSES = [
    BertModel,
    BertForPreTraining,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertForQuestionAnswering,
    BertForMultipleChoice,
]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_head_ours_to_transformers(cls, tmp_path):
    """Our random weights, saved by us, loaded by transformers: same outputs, nothing missing."""
    ours = cls(tiny_cfg(cls)).eval()
    randomise(ours)
    ours.save_pretrained(tmp_path)
    theirs, info = getattr(transformers, cls.__name__).from_pretrained(
        tmp_path, output_loading_info=True, attn_implementation="sdpa"
    )
    assert not info["missing_keys"] and not info["mismatched_keys"]
    compare_outputs(cls.__name__, ours, theirs.eval(), *inputs())


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_head_transformers_to_ours(cls, tmp_path):
    """transformers' random weights, saved by transformers, loaded by us: same outputs."""
    theirs = getattr(transformers, cls.__name__)(hf_config(tiny_cfg(cls))).eval()
    randomise(theirs, seed=1)
    theirs.save_pretrained(tmp_path)
    ours = cls.from_pretrained(tmp_path)
    assert not ours.loading_info, ours.loading_info.message()
    compare_outputs(cls.__name__, ours, theirs, *inputs())


def test_saved_pretraining_dir_loads_in_transformers(tmp_path):
    """The acceptance check as stated: bertkit-saved BertForPreTraining in transformers."""
    ours = BertForPreTraining(BertConfig.from_preset("mini", vocab_size=300)).eval()
    randomise(ours, seed=5)
    ours.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["architectures"] == ["BertForPreTraining"]
    theirs, info = transformers.BertForPreTraining.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    ids, mask, types = inputs(V=300)
    with torch.no_grad():
        a = ours(ids, mask, types)
        b = theirs.eval()(input_ids=ids, attention_mask=mask, token_type_ids=types)
    assert maxdiff(a.mlm_logits, b.prediction_logits) <= TOL
    assert maxdiff(a.nsp_logits, b.seq_relationship_logits) <= TOL


# --------------------------------------------------------------------------- parameter counts
def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("preset,millions", [("base", 110), ("large", 335)])
def test_parameter_counts(preset, millions):
    """base = 110M, large = 335M (encoder incl. pooler, excluding heads, as BERT's paper counts),
    and every model within 1% (here: exactly) of transformers' count for the same config."""
    cfg = BertConfig.from_preset(preset)
    with torch.device("meta"):
        ours = {c.__name__: count(c(cfg)) for c in (BertModel, BertForPreTraining)}
        theirs = {c: count(getattr(transformers, c)(hf_config(cfg))) for c in ours}
    assert abs(ours["BertModel"] / 1e6 - millions) / millions < 0.01
    for name in ours:
        assert abs(ours[name] - theirs[name]) / theirs[name] < 0.01, name
        assert ours[name] == theirs[name], name
