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
    types[:, T // 2 :] = 1
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
    bias = attention_bias(mask)
    assert bias.shape == (3, 1, 1, 3) and bias.dtype == torch.bool
    assert bias[0, 0, 0].tolist() == [True, True, False]
    assert bias[2].all()  # an all-padding row attends everywhere instead of giving NaN
    full = torch.ones(2, 4, dtype=torch.long)
    assert attention_bias(full) is None  # nothing padded: no mask, SDPA's fast path
    assert attention_bias(None) is None


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


def test_hidden_states_at_equals_full_forward():
    """The last layer computed at a few rows only gives the same states as the full model."""
    torch.manual_seed(0)
    m = BertModel(tiny(num_hidden_layers=3)).eval()
    ids, mask, types = batch(B=3, T=12)
    mask[1, 8:] = 0
    rows = torch.tensor([[0, 3, 3, 11], [0, 1, 7, 0], [0, 5, 6, 2]])
    full = m(ids, mask, types).last_hidden_state  # (B, T, H)
    part = m.hidden_states_at(ids, mask, types, rows)  # (B, R, H)
    expect = torch.stack([full[b, rows[b]] for b in range(3)])
    assert part.shape == (3, 4, 128)
    assert (part - expect).abs().max() <= 1e-6
    assert (m.pooler(part) - m(ids, mask, types).pooler_output).abs().max() <= 1e-6


def test_cpu_dropout_statistics_and_gradient():
    from bertkit.ops import dropout

    torch.manual_seed(0)
    x = torch.ones(1000, 1000, requires_grad=True)
    y = dropout(x, 0.1, training=True)
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - 0.1) < 0.003  # 1e6 draws: sd 3e-4
    kept = y[y != 0]
    assert torch.allclose(kept, torch.full_like(kept, 1 / (1 - 6554 / 65536)))
    assert abs(y.mean().item() - 1.0) < 0.005  # expectation preserved
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())  # gradient flows through kept elements only
    assert dropout(x, 0.1, training=False) is x
    torch.manual_seed(1)
    a = dropout(x, 0.3, True)
    torch.manual_seed(1)
    assert torch.equal(a, dropout(x, 0.3, True))  # seeded by torch.manual_seed
    assert abs((a == 0).float().mean().item() - 0.3) < 0.003


def test_cpu_attention_math_path_equals_sdpa():
    from bertkit.ops import attention

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 8, generator=g) for _ in range(3))
    mask = torch.ones(2, 1, 1, 5, dtype=torch.bool)
    mask[1, ..., 3:] = False
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    # p = 1e-9 rounds to "drop nothing": the math path (taken for any p > 0 on CPU) must equal SDPA
    assert (attention(q, k, v, mask, 1e-9) - ref).abs().max() <= 1e-6
    assert (attention(q, k, v, mask, 0.0) - ref).abs().max() <= 1e-6
    torch.manual_seed(0)
    out = attention(q, k, v, mask, 0.5)
    assert out.shape == ref.shape and not torch.allclose(out, ref)


def test_training_and_inference_paths_agree_without_dropout():
    """Training fuses Q/K/V into one matmul, inference does not: same numbers."""
    torch.manual_seed(0)
    m = BertModel(tiny(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))
    ids, mask, types = batch()
    mask[1, 6:] = 0
    train_out = m.train()(ids, mask, types).last_hidden_state
    eval_out = m.eval()(ids, mask, types).last_hidden_state
    assert (train_out - eval_out).abs().max() <= 1e-6
