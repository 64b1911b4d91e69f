"""The BERT encoder: embeddings, post-LN transformer layers (SDPA attention), pooler.

Module and parameter names follow Hugging Face's ``BertModel`` exactly
(``embeddings.word_embeddings.weight``, ``encoder.layer.0.attention.self.query.weight``, ...)
so checkpoints map one-to-one without a renaming table.

Shapes: B batch, T sequence length, H hidden size, nh heads, hs head size (H/nh), I FFN size.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from bertkit.checkpoint import PretrainedMixin
from bertkit.config import BertConfig


class BertOutput(NamedTuple):
    last_hidden_state: torch.Tensor  # (B, T, H)
    pooler_output: torch.Tensor | None  # (B, H); None when the model has no pooler


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """GELU, tanh approximation (HF ``gelu_new`` / ``gelu_pytorch_tanh``)."""
    return F.gelu(x, approximate="tanh")


def activation(name: str):
    """The feed-forward activation; ``gelu`` is the exact erf form used by the original BERT."""
    table = {"gelu": F.gelu, "gelu_new": gelu_tanh, "gelu_pytorch_tanh": gelu_tanh, "relu": F.relu}
    if name not in table:
        raise ValueError(f"unsupported activation {name!r}")
    return table[name]


def init_bert_weights(module: nn.Module, std: float) -> None:
    """Initialise one module as the original BERT: normal(0, std) weights, zero biases,
    LayerNorm weight 1 / bias 0. Apply with ``model.apply(lambda m: init_bert_weights(m, std))``.
    """
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, mean=0.0, std=std)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def attention_bias(attention_mask: torch.Tensor | None, training: bool) -> torch.Tensor | None:
    """Turn a (B, T) 1/0 padding mask into the SDPA mask (B, 1, 1, T), True = attend.

    Returns None (no mask: SDPA's fastest path) when there is no mask, or, in eval mode,
    when nothing is padded. A sequence whose mask is all zeros attends to every position
    instead of producing NaN (its outputs are meaningless either way, but finite).
    """
    if attention_mask is None:
        return None
    keep = attention_mask.bool()
    if not training and bool(keep.all()):
        return None
    empty = ~keep.any(dim=1, keepdim=True)  # (B, 1)
    keep = keep | empty
    return keep[:, None, None, :]  # (B, 1, 1, T)


class BertEmbeddings(nn.Module):
    """Word + position + token-type embeddings, then LayerNorm and dropout."""

    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.position_embeddings = nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size)
        self.token_type_embeddings = nn.Embedding(cfg.type_vocab_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None) -> torch.Tensor:
        T = input_ids.shape[1]
        if T > self.position_embeddings.num_embeddings:
            raise ValueError(
                f"sequence length {T} exceeds max_position_embeddings "
                f"{self.position_embeddings.num_embeddings}"
            )
        x = self.word_embeddings(input_ids)  # (B, T, H)
        x = x + self.position_embeddings.weight[:T]  # (T, H) broadcast over B
        if token_type_ids is None:
            x = x + self.token_type_embeddings.weight[0]
        else:
            x = x + self.token_type_embeddings(token_type_ids)
        return self.dropout(self.LayerNorm(x))


class BertSelfAttention(nn.Module):
    """Multi-head self-attention through ``F.scaled_dot_product_attention``.

    Q, K and V keep HF's separate ``query`` / ``key`` / ``value`` parameters (checkpoint names)
    but are computed with ONE matmul against their concatenated weights.
    """

    def __init__(self, cfg: BertConfig):
        super().__init__()
        H = cfg.hidden_size
        self.num_heads = cfg.num_attention_heads
        self.head_size = H // cfg.num_attention_heads
        self.query = nn.Linear(H, H)
        self.key = nn.Linear(H, H)
        self.value = nn.Linear(H, H)
        self.dropout_p = cfg.attention_probs_dropout_prob

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        B, T, H = x.shape
        w = torch.cat([self.query.weight, self.key.weight, self.value.weight])  # (3H, H)
        b = torch.cat([self.query.bias, self.key.bias, self.value.bias])  # (3H,)
        qkv = F.linear(x, w, b)  # (B, T, 3H)
        qkv = qkv.view(B, T, 3, self.num_heads, self.head_size).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each (B, nh, T, hs)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout_p if self.training else 0.0
        )  # (B, nh, T, hs)
        return y.transpose(1, 2).reshape(B, T, H)  # (B, T, H)


class BertResidualOutput(nn.Module):
    """dense -> dropout -> add residual -> LayerNorm (HF's BertSelfOutput / BertOutput)."""

    def __init__(self, d_in: int, cfg: BertConfig):
        super().__init__()
        self.dense = nn.Linear(d_in, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)

    def forward(self, h: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(h)) + residual)  # (B, T, H)


class BertAttention(nn.Module):
    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.self = BertSelfAttention(cfg)
        self.output = BertResidualOutput(cfg.hidden_size, cfg)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return self.output(self.self(x, mask), x)


class BertIntermediate(nn.Module):
    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.act = activation(cfg.hidden_act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.dense(x))  # (B, T, I)


class BertLayer(nn.Module):
    """One post-LN transformer layer: x = LN(x + Attn(x)); x = LN(x + FFN(x))."""

    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.attention = BertAttention(cfg)
        self.intermediate = BertIntermediate(cfg)
        self.output = BertResidualOutput(cfg.intermediate_size, cfg)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        x = self.attention(x, mask)  # (B, T, H)
        return self.output(self.intermediate(x), x)  # (B, T, H)


class BertEncoder(nn.Module):
    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(cfg) for _ in range(cfg.num_hidden_layers))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        for layer in self.layer:
            x = layer(x, mask)
        return x


class BertPooler(nn.Module):
    """tanh(dense(hidden state of [CLS]))."""

    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(x[:, 0]))  # (B, H)


class BertModel(PretrainedMixin, nn.Module):
    """The BERT encoder. ``add_pooling_layer=False`` drops the pooler (as HF does for token
    classification and QA), and ``pooler_output`` is then None."""

    def __init__(self, cfg: BertConfig, add_pooling_layer: bool = True):
        super().__init__()
        self.config = cfg
        self.embeddings = BertEmbeddings(cfg)
        self.encoder = BertEncoder(cfg)
        self.pooler = BertPooler(cfg) if add_pooling_layer else None
        self.apply(lambda m: init_bert_weights(m, cfg.initializer_range))

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> BertOutput:
        """input_ids, attention_mask (1 = token, 0 = padding), token_type_ids: (B, T)."""
        mask = attention_bias(attention_mask, self.training)  # (B, 1, 1, T) or None
        x = self.embeddings(input_ids, token_type_ids)  # (B, T, H)
        x = self.encoder(x, mask)  # (B, T, H)
        pooled = self.pooler(x) if self.pooler is not None else None  # (B, H)
        return BertOutput(x, pooled)

    @property
    def bert(self) -> "BertModel":
        """The encoder itself, so ``model.bert`` works on every bertkit model class."""
        return self


__all__ = [
    "BertOutput", "BertModel", "BertEmbeddings", "BertLayer", "BertEncoder", "BertPooler",
    "init_bert_weights", "activation", "attention_bias",
]
