"""bertkit: BERT end to end — WordPiece, pre-training, fine-tuning, HF-compatible checkpoints."""

__version__ = "0.1.0"

from bertkit.errors import BertkitError

# Model classes import torch; load them on first use so `bertkit --help` stays fast.
_LAZY = {
    "BertConfig": "bertkit.config",
    "BertModel": "bertkit.model",
    "BertOutput": "bertkit.model",
    "BertForPreTraining": "bertkit.heads",
    "PreTrainingOutput": "bertkit.heads",
    "pretraining_loss": "bertkit.heads",
    "BertForSequenceClassification": "bertkit.heads",
    "BertForTokenClassification": "bertkit.heads",
    "BertForQuestionAnswering": "bertkit.heads",
    "QAOutput": "bertkit.heads",
    "BertForMultipleChoice": "bertkit.heads",
    "Tokenizer": "bertkit.tokenization",
    "train_vocab": "bertkit.tokenization",
    "PrepareOptions": "bertkit.pretraining.format",
    "PretrainingLoader": "bertkit.pretraining.loader",
    "Trainer": "bertkit.training.loop",
    "TrainConfig": "bertkit.training.config",
    "PretrainConfig": "bertkit.pretrain",
    "pretrain": "bertkit.pretrain",
    "FinetuneConfig": "bertkit.finetune",
    "finetune": "bertkit.finetune",
    "load": "bertkit.inference",
    "Predictor": "bertkit.inference",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bertkit' has no attribute {name!r}")


__all__ = [
    "__version__",
    "BertkitError",
    "BertConfig",
    "BertModel",
    "BertOutput",
    "BertForPreTraining",
    "PreTrainingOutput",
    "pretraining_loss",
    "BertForSequenceClassification",
    "BertForTokenClassification",
    "BertForQuestionAnswering",
    "QAOutput",
    "BertForMultipleChoice",
    "Tokenizer",
    "train_vocab",
    "PrepareOptions",
    "PretrainingLoader",
    "Trainer",
    "TrainConfig",
    "PretrainConfig",
    "pretrain",
    "FinetuneConfig",
    "finetune",
    "load",
    "Predictor",
]
