"""BertModel: shapes, initialisation, padding invariance, masks, bf16 autocast."""

from __future__ import annotations

import pytest
import torch

from bertkit import BertConfig, BertModel
from bertkit.model import attention_bias


def tiny(**kw) -> BertConfig:
    return BertConfig.from_preset("tiny", vocab_size=120, max_position_embeddings=64, **kw)


def batch(B=3, T=10, V=120, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, V, (B, T), generator=g)
    types = torch.zeros(B, T, dtype=torch.long)
    types[:, T // 2:] = 1
    return ids, torch.ones(B, T, dtype=torch.long), types


def test_shapes():
    torch.manual_seed(0)
    m = BertModel(tiny()).eval()
    ids, mask, types = batch()
    out = m(ids, mask, types)
    assert out.last_hidden_state.shape == (3, 10, 128)
    assert out.pooler_output.shape == (3, 128)
    assert BertModel(tiny(), add_pooling_layer=False)(ids).pooler_output is None


def test_initialisation_as_original():
    torch.manual_seed(0)
    m = BertModel(BertConfig.from_preset("mini", vocab_size=2000))
    q = m.encoder.layer[0].attention.self.query
    assert abs(q.weight.std().item() - 0.02) < 0.001
    assert torch.all(q.bias == 0)
    assert abs(m.embeddings.word_embeddings.weight.std().item() - 0.02) < 0.001
    ln = m.encoder.layer[1].output.LayerNorm
    assert torch.all(ln.weight == 1) and torch.all(ln.bias == 0)


def test_padding_invariance():
    """Appending [PAD] tokens changes no output at the real positions (<= 1e-6)."""
    torch.manual_seed(0)
    m = BertModel(tiny()).eval()
    ids, mask, types = batch(T=9)
    ref = m(ids, mask, types)
    pad = 7
    ids_p = torch.cat([ids, torch.zeros(3, pad, dtype=torch.long)], 1)
    mask_p = torch.cat([mask, torch.zeros(3, pad, dtype=torch.long)], 1)
    types_p = torch.cat([types, torch.zeros(3, pad, dtype=torch.long)], 1)
    out = m(ids_p, mask_p, types_p)
    assert (out.last_hidden_state[:, :9] - ref.last_hidden_state).abs().max() <= 1e-6
    assert (out.pooler_output - ref.pooler_output).abs().max() <= 1e-6


def test_mixed_lengths_match_single_sequences():
    torch.manual_seed(0)
    m = BertModel(tiny()).eval()
    ids, _, types = batch(B=2, T=12)
    mask = torch.ones(2, 12, dtype=torch.long)
    mask[1, 5:] = 0
    both = m(ids, mask, types).last_hidden_state
    alone = m(ids[1:, :5], None, types[1:, :5]).last_hidden_state
    assert (both[1, :5] - alone[0]).abs().max() <= 1e-6


def test_mask_helper():
    mask = torch.tensor([[1, 1, 0], [1, 1, 1], [0, 0, 0]])
    bias = attention_bias(mask, training=False)
    assert bias.shape == (3, 1, 1, 3) and bias.dtype == torch.bool
    assert bias[0, 0, 0].tolist() == [True, True, False]
    assert bias[2].all()  # an all-padding row attends everywhere instead of giving NaN
    full = torch.ones(2, 4, dtype=torch.long)
    assert attention_bias(full, training=False) is None  # eval fast path: no mask
    assert attention_bias(full, training=True) is not None
    assert attention_bias(None, training=True) is None


def test_all_padding_row_is_finite():
    m = BertModel(tiny()).eval()
    ids, mask, types = batch(B=2)
    mask[0] = 0
    assert torch.isfinite(m(ids, mask, types).last_hidden_state).all()


def test_dropout_only_in_training():
    torch.manual_seed(0)
    m = BertModel(tiny())
    ids, mask, types = batch()
    m.train()
    a, b = m(ids, mask, types).last_hidden_state, m(ids, mask, types).last_hidden_state
    assert not torch.allclose(a, b)
    m.eval()
    a, b = m(ids, mask, types).last_hidden_state, m(ids, mask, types).last_hidden_state
    assert torch.equal(a, b)


def test_too_long_sequence_is_refused():
    m = BertModel(tiny()).eval()
    with pytest.raises(ValueError, match="max_position_embeddings"):
        m(torch.zeros(1, 65, dtype=torch.long))


def test_bf16_autocast_close_to_fp32():
    torch.manual_seed(0)
    m = BertModel(BertConfig.from_preset("mini", vocab_size=500)).eval()
    ids, mask, types = batch(B=4, T=32, V=500)
    mask[2, 20:] = 0
    with torch.no_grad():
        ref = m(ids, mask, types).last_hidden_state
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = m(ids, mask, types).last_hidden_state
    assert low.dtype == torch.float32 or low.dtype == torch.bfloat16
    rel = (low.float() - ref).norm() / ref.norm()
    assert rel <= 2e-2, rel


def test_backward_reaches_every_parameter():
    torch.manual_seed(0)
    m = BertModel(tiny()).train()
    ids, mask, types = batch()
    mask[0, 6:] = 0
    out = m(ids, mask, types)
    (out.last_hidden_state.sum() + out.pooler_output.sum()).backward()
    for name, p in m.named_parameters():
        assert p.grad is not None, name
    unused = m.embeddings.word_embeddings.weight.grad[:5]  # ids start at 5
    assert torch.all(unused == 0)
