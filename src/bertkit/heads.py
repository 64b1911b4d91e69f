"""Heads on the BERT encoder: pre-training (MLM + NSP) and the fine-tuning tasks.

Every model here is ``encoder + head``: ``self.bert`` is a :class:`~bertkit.model.BertModel`
and the head is a small module under HF's name (``cls``, ``classifier``, ``qa_outputs``), so
checkpoints map one-to-one onto transformers' ``BertFor*`` classes.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from bertkit.checkpoint import PretrainedMixin
from bertkit.config import BertConfig
from bertkit.model import BertModel, activation, init_bert_weights
from bertkit.ops import Dropout


class PreTrainingOutput(NamedTuple):
    mlm_logits: torch.Tensor  # (B, P, V) at the P positions asked for (default: all T)
    nsp_logits: torch.Tensor  # (B, 2)


class QAOutput(NamedTuple):
    start_logits: torch.Tensor  # (B, T)
    end_logits: torch.Tensor  # (B, T)


# --------------------------------------------------------------------------- pre-training heads
class BertPredictionHeadTransform(nn.Module):
    """dense -> activation -> LayerNorm, applied before the vocabulary projection."""

    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.act = activation(cfg.hidden_act)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.act(self.dense(h)))


class BertLMPredictionHead(nn.Module):
    """Masked-LM head. The decoder weight is the word-embedding matrix (tied, passed in at call
    time so it is stored once); the head owns only the transform and the output ``bias``."""

    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.transform = BertPredictionHeadTransform(cfg)
        self.bias = nn.Parameter(torch.zeros(cfg.vocab_size))

    def forward(self, h: torch.Tensor, decoder_weight: torch.Tensor) -> torch.Tensor:
        # h: (..., H); decoder_weight: (V, H)
        return F.linear(self.transform(h), decoder_weight, self.bias)  # (..., V)


class BertPreTrainingHeads(nn.Module):
    """MLM head (``predictions``) + next-sentence head (``seq_relationship``), HF names."""

    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.predictions = BertLMPredictionHead(cfg)
        self.seq_relationship = nn.Linear(cfg.hidden_size, 2)


class BertForPreTraining(PretrainedMixin, nn.Module):
    """BERT with the masked-LM and next-sentence-prediction heads.

    ``mlm_logits`` is always (B, P, V): the logits at ``masked_positions`` (B, P), which
    default to every position (P = T; fill-mask, inspection, the HF layout). Given positions,
    the vocabulary projection is computed ONLY there (as the original ``get_masked_lm_output``),
    and the encoder's last layer only there and at [CLS] (see :meth:`BertModel.hidden_states_at`);
    by default the full sequence runs without a gather, with the same result as passing
    ``arange(T)`` for every row.
    """

    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.config = cfg
        self.bert = BertModel(cfg)
        self.cls = BertPreTrainingHeads(cfg)
        self.cls.apply(lambda m: init_bert_weights(m, cfg.initializer_range))

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        masked_positions: torch.Tensor | None = None,
    ) -> PreTrainingOutput:
        if masked_positions is None:
            hidden, pooled = self.bert(input_ids, attention_mask, token_type_ids)  # (B,T,H), (B,H)
        else:
            cls_pos = masked_positions.new_zeros(masked_positions.shape[0], 1)  # (B, 1)
            rows = torch.cat([cls_pos, masked_positions], dim=1)  # (B, 1+P)
            h = self.bert.hidden_states_at(input_ids, attention_mask, token_type_ids, rows)
            pooled = self.bert.pooler(h)  # reads h[:, 0], the [CLS] row -> (B, H)
            hidden = h[:, 1:]  # (B, P, H)
        decoder_weight = self.bert.embeddings.word_embeddings.weight  # (V, H), tied
        mlm_logits = self.cls.predictions(hidden, decoder_weight)  # (B, P, V); P = T by default
        nsp_logits = self.cls.seq_relationship(pooled)  # (B, 2)
        return PreTrainingOutput(mlm_logits, nsp_logits)


def pretraining_loss(
    output: PreTrainingOutput,
    mlm_labels: torch.Tensor,
    nsp_labels: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Masked-LM cross-entropy (+ NSP cross-entropy when ``nsp_labels`` is given).

    mlm_labels: (B, P) matching ``output.mlm_logits`` (B, P, V); -100 marks padding / ignored
    positions. Returns ``(loss, metrics)`` where metrics has ``mlm_loss`` and ``mlm_acc``
    (over the labelled positions) and, only when ``nsp_labels`` is given, ``nsp_loss`` and
    ``nsp_acc``. A batch with no labelled position gives an MLM loss of 0, not NaN.
    """
    logits = output.mlm_logits.float().flatten(0, -2)  # (B*P, V)
    labels = mlm_labels.flatten()  # (B*P,)
    valid = labels != -100
    n = valid.sum().clamp_min(1)
    mlm_loss = F.cross_entropy(logits, labels, ignore_index=-100, reduction="sum") / n
    with torch.no_grad():
        mlm_acc = ((logits.argmax(-1) == labels) & valid).sum() / n
    loss = mlm_loss
    metrics = {"mlm_loss": mlm_loss.detach(), "mlm_acc": mlm_acc}
    if nsp_labels is not None:
        nsp_logits = output.nsp_logits.float()  # (B, 2)
        nsp_loss = F.cross_entropy(nsp_logits, nsp_labels)
        with torch.no_grad():
            nsp_acc = (nsp_logits.argmax(-1) == nsp_labels).float().mean()
        loss = loss + nsp_loss
        metrics["nsp_loss"] = nsp_loss.detach()
        metrics["nsp_acc"] = nsp_acc
    values = torch.stack([v.float() for v in metrics.values()]).tolist()  # one device sync
    return loss, dict(zip(metrics, values))


# --------------------------------------------------------------------------- task heads
def _classifier_dropout(cfg: BertConfig) -> float:
    return cfg.hidden_dropout_prob if cfg.classifier_dropout is None else cfg.classifier_dropout


class BertTaskModel(PretrainedMixin, nn.Module):
    """A fine-tuning model: the encoder ``bert`` + dropout + one linear head under HF's name.

    A subclass says what the head reads (:meth:`features`: pooled [CLS] or every token), how
    many outputs it has (:meth:`num_outputs`) and how they are shaped (:meth:`outputs`); the
    constructor and ``forward(input_ids, attention_mask, token_type_ids)`` are shared.
    """

    head_name = "classifier"  # the head's parameter names in HF checkpoints
    pooled = True  # the head reads the pooled [CLS] (the encoder keeps its pooler)
    head_dropout = True  # dropout before the head (HF's QA head has none)

    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.config = cfg
        self.num_labels = cfg.num_labels
        self.bert = BertModel(cfg, add_pooling_layer=self.pooled)
        self.dropout = Dropout(_classifier_dropout(cfg)) if self.head_dropout else nn.Identity()
        head = nn.Linear(cfg.hidden_size, self.num_outputs(cfg))
        init_bert_weights(head, cfg.initializer_range)
        self.add_module(self.head_name, head)

    @staticmethod
    def num_outputs(cfg: BertConfig) -> int:
        return cfg.num_labels

    def features(self, input_ids, attention_mask, token_type_ids) -> torch.Tensor:
        """What the head reads: pooled [CLS] (B, H) (the last layer for that row only), or
        every token's hidden state (B, T, H)."""
        if not self.pooled:
            return self.bert(input_ids, attention_mask, token_type_ids).last_hidden_state  # (B, T, H)
        cls_pos = input_ids.new_zeros(input_ids.shape[0], 1)  # (B, 1)
        h = self.bert.hidden_states_at(input_ids, attention_mask, token_type_ids, cls_pos)  # (B, 1, H)
        return self.bert.pooler(h)  # (B, H)

    def outputs(self, logits: torch.Tensor, input_ids: torch.Tensor) -> Any:
        return logits

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> Any:
        head = getattr(self, self.head_name)
        logits = head(self.dropout(self.features(input_ids, attention_mask, token_type_ids)))
        return self.outputs(logits, input_ids)


class BertForSequenceClassification(BertTaskModel):
    """Pooled [CLS] -> dropout -> linear: logits (B, num_labels); num_labels 1 = regression.

    Only [CLS] is read, so the encoder's last layer runs for that row alone."""


class BertForTokenClassification(BertTaskModel):
    """Every token's hidden state -> dropout -> linear: logits (B, T, num_labels)."""

    pooled = False


class BertForQuestionAnswering(BertTaskModel):
    """Span QA: a linear map of every token to (start, end) logits, each (B, T)."""

    head_name = "qa_outputs"
    pooled = False
    head_dropout = False

    @staticmethod
    def num_outputs(cfg: BertConfig) -> int:
        return 2  # start, end (transformers sizes qa_outputs by num_labels, 2 by default)

    def outputs(self, logits: torch.Tensor, input_ids: torch.Tensor) -> QAOutput:
        start, end = logits.unbind(-1)  # (B, T, 2) -> (B, T) each
        return QAOutput(start.contiguous(), end.contiguous())


class BertForMultipleChoice(BertTaskModel):
    """Each (context, choice) pair -> pooled [CLS] -> linear -> one score: logits (B, C)."""

    @staticmethod
    def num_outputs(cfg: BertConfig) -> int:
        return 1

    def features(self, input_ids, attention_mask, token_type_ids) -> torch.Tensor:
        B, C, T = input_ids.shape

        def flat(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.reshape(B * C, T)  # (B*C, T)

        return super().features(flat(input_ids), flat(attention_mask), flat(token_type_ids))  # (B*C, H)

    def outputs(self, logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        return logits.view(input_ids.shape[:2])  # (B*C, 1) -> (B, C)


TASK_CLASSES = {
    "sequence_classification": BertForSequenceClassification,
    "token_classification": BertForTokenClassification,
    "question_answering": BertForQuestionAnswering,
    "multiple_choice": BertForMultipleChoice,
}
