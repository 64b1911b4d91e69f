"""Heads: a shape test for every head on a tiny config, tying, masked-position gathering, loss."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from bertkit import (
    BertConfig,
    BertForMultipleChoice,
    BertForPreTraining,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    pretraining_loss,
)
from bertkit.heads import PreTrainingOutput

V = 150


def tiny(**kw) -> BertConfig:
    return BertConfig.from_preset("tiny", vocab_size=V, max_position_embeddings=64, **kw)


def inputs(B=2, T=11, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, V, (B, T), generator=g)
    mask = torch.ones(B, T, dtype=torch.long)
    mask[-1, T - 3 :] = 0
    return ids, mask, torch.zeros(B, T, dtype=torch.long)


def test_pretraining_shapes_with_and_without_positions():
    torch.manual_seed(0)
    m = BertForPreTraining(tiny()).eval()
    ids, mask, types = inputs()
    full = m(ids, mask, types)
    assert full.mlm_logits.shape == (2, 11, V) and full.nsp_logits.shape == (2, 2)
    pos = torch.tensor([[1, 4, 0], [2, 3, 0]])
    part = m(ids, mask, types, masked_positions=pos)
    assert part.mlm_logits.shape == (2, 3, V)
    # gathering first gives exactly the full logits at those positions
    expect = torch.stack([full.mlm_logits[b, pos[b]] for b in range(2)])
    assert torch.allclose(part.mlm_logits, expect, atol=1e-6)
    # NSP reads [CLS] through the last layer run for all rows vs. for the [CLS] rows only: two GEMM
    # shapes, which round differently on some CPUs (Intel AMX: ~1e-7), so equal within tolerance.
    assert torch.allclose(part.nsp_logits, full.nsp_logits, rtol=1e-5, atol=1e-6)
    # the default positions are every position: one shape rule, (B, P, V) with P = T
    every = m(ids, mask, types, masked_positions=torch.arange(11).expand(2, 11))
    assert every.mlm_logits.shape == full.mlm_logits.shape
    assert torch.allclose(every.mlm_logits, full.mlm_logits, atol=1e-5)


def test_task_models_share_one_base_and_keep_hf_names():
    from bertkit.heads import TASK_CLASSES, BertTaskModel

    cfg = tiny()
    names = {
        "sequence_classification": {"classifier.weight", "bert.pooler.dense.weight"},
        "token_classification": {"classifier.weight"},
        "question_answering": {"qa_outputs.weight"},
        "multiple_choice": {"classifier.weight", "bert.pooler.dense.weight"},
    }
    for kind, cls in TASK_CLASSES.items():
        assert issubclass(cls, BertTaskModel)
        params = set(cls(cfg).state_dict())
        assert names[kind] <= params, kind
        assert not any(n.startswith("bert.pooler") for n in params) or cls.pooled, kind


def test_decoder_is_tied_to_word_embeddings():
    m = BertForPreTraining(tiny())
    names = [n for n, _ in m.named_parameters()]
    assert "cls.predictions.bias" in names
    assert not any("decoder" in n for n in names)  # the decoder weight IS the embedding matrix
    with torch.no_grad():
        m.bert.embeddings.word_embeddings.weight[7].zero_()
        m.cls.predictions.bias[7] = 3.5
    m.eval()
    out = m(*inputs())
    assert torch.allclose(out.mlm_logits[..., 7], torch.full_like(out.mlm_logits[..., 7], 3.5))


def test_sequence_classification_and_regression():
    ids, mask, types = inputs()
    assert BertForSequenceClassification(tiny(num_labels=3))(ids, mask, types).shape == (2, 3)
    assert BertForSequenceClassification(tiny(num_labels=1))(ids, mask, types).shape == (2, 1)
    assert BertForSequenceClassification(tiny())(ids, mask, types).shape == (2, 2)


def test_token_classification():
    m = BertForTokenClassification(tiny(num_labels=5))
    assert m(*inputs()).shape == (2, 11, 5)
    assert m.bert.pooler is None  # as HF: no pooler for token-level heads


def test_question_answering():
    m = BertForQuestionAnswering(tiny())
    out = m(*inputs())
    assert out.start_logits.shape == (2, 11) and out.end_logits.shape == (2, 11)


def test_multiple_choice():
    torch.manual_seed(0)
    m = BertForMultipleChoice(tiny()).eval()
    ids, mask, types = inputs(B=6)
    logits = m(ids.view(2, 3, 11), mask.view(2, 3, 11), types.view(2, 3, 11))
    assert logits.shape == (2, 3)
    # each choice scored independently: same as scoring the flat batch
    flat = m.classifier(m.bert(ids, mask, types).pooler_output).view(2, 3)
    assert torch.allclose(logits, flat, atol=1e-6)


def test_pretraining_loss_matches_cross_entropy():
    g = torch.Generator().manual_seed(0)
    mlm = torch.randn(2, 3, V, generator=g)
    nsp = torch.randn(2, 2, generator=g)
    labels = torch.tensor([[4, 9, -100], [mlm[1, 0].argmax().item(), -100, -100]])
    nsp_labels = torch.tensor([0, 1])
    loss, metrics = pretraining_loss(PreTrainingOutput(mlm, nsp), labels, nsp_labels)
    keep = labels.flatten() != -100
    want_mlm = F.cross_entropy(mlm.flatten(0, 1)[keep], labels.flatten()[keep])
    want_nsp = F.cross_entropy(nsp, nsp_labels)
    assert math.isclose(metrics["mlm_loss"], want_mlm.item(), rel_tol=1e-5)
    assert math.isclose(metrics["nsp_loss"], want_nsp.item(), rel_tol=1e-5)
    assert torch.allclose(loss, want_mlm + want_nsp)
    hits = (mlm.flatten(0, 1)[keep].argmax(-1) == labels.flatten()[keep]).float().mean().item()
    assert math.isclose(metrics["mlm_acc"], hits) and metrics["mlm_acc"] >= 1 / 3
    want_acc = (nsp.argmax(-1) == nsp_labels).float().mean().item()
    assert math.isclose(metrics["nsp_acc"], want_acc)


def test_pretraining_loss_without_nsp_and_without_labels():
    mlm = torch.randn(2, 3, V, requires_grad=True)
    out = PreTrainingOutput(mlm, torch.randn(2, 2))
    loss, metrics = pretraining_loss(out, torch.tensor([[1, -100, -100], [2, 3, -100]]))
    assert set(metrics) == {"mlm_loss", "mlm_acc"}
    loss.backward()
    assert mlm.grad[:, 2].abs().sum() == 0 and mlm.grad[0, 1].abs().sum() == 0
    empty, m2 = pretraining_loss(out, torch.full((2, 3), -100))
    assert empty.item() == 0 and m2["mlm_acc"] == 0


def test_pretraining_step_learns():
    """A few AdamW steps on one batch drive the MLM + NSP loss down (the heads are wired)."""
    torch.manual_seed(0)
    m = BertForPreTraining(tiny(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)).train()
    ids, mask, types = inputs(B=4, T=12)
    pos = torch.tensor([[1, 2], [3, 4], [5, 6], [1, 7]])
    labels = torch.gather(ids, 1, pos)
    nsp = torch.tensor([0, 1, 0, 1])
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2)
    losses = []
    for _ in range(8):
        loss, _ = pretraining_loss(m(ids, mask, types, pos), labels, nsp)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_masked_positions_path_gives_the_same_gradients():
    """Computing the last layer / vocab projection only at masked rows changes no gradient."""
    torch.manual_seed(0)
    cfg = tiny(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    m = BertForPreTraining(cfg).train()
    ids, mask, types = inputs(B=3, T=10)
    pos = torch.tensor([[1, 2, 0], [4, 5, 6], [2, 3, 0]])
    labels = torch.tensor([[7, 8, -100], [9, 10, 11], [12, 13, -100]])
    nsp = torch.tensor([0, 1, 1])

    def grads(out):
        m.zero_grad()
        pretraining_loss(out, labels, nsp)[0].backward()
        return {n: p.grad.clone() for n, p in m.named_parameters()}

    sparse = grads(m(ids, mask, types, pos))
    full = m(ids, mask, types)
    gathered = torch.stack([full.mlm_logits[b, pos[b]] for b in range(3)])
    dense = grads(PreTrainingOutput(gathered, full.nsp_logits))
    for name in dense:
        assert torch.allclose(sparse[name], dense[name], atol=1e-5, rtol=1e-4), name
