"""Model configuration: one dataclass with the Hugging Face ``config.json`` keys, plus presets.

``BertConfig`` is saved in every checkpoint (``config.json``) and is all that is needed to
rebuild the model. Keys written by transformers that bertkit does not use (``architectures``,
``model_type``, ``transformers_version``, ``use_cache``, ...) are tolerated on load; keys that
would change the architecture in a way bertkit does not implement are refused with a clear error.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bertkit.errors import BertkitError
from bertkit.fileio import atomic_write_json, read_json
from bertkit.hub import resolve

CONFIG_NAME = "config.json"
GOOGLE_CONFIG_NAME = "bert_config.json"  # Google's TensorFlow checkpoints (same keys)

# name -> (num_hidden_layers, hidden_size, num_attention_heads); heads = H/64, FFN = 4H.
PRESETS: dict[str, tuple[int, int, int]] = {
    "tiny": (2, 128, 2),
    "mini": (4, 256, 4),
    "small": (4, 512, 8),
    "medium": (8, 512, 8),
    "base": (12, 768, 12),
    "large": (24, 1024, 16),
}

SUPPORTED_ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "relu")

# HF keys whose non-default value would mean an architecture bertkit does not implement.
_REFUSED_VALUES: dict[str, Any] = {
    "position_embedding_type": "absolute",
    "is_decoder": False,
    "add_cross_attention": False,
    "tie_word_embeddings": True,
}


@dataclass
class BertConfig:
    """BERT hyper-parameters under their Hugging Face ``config.json`` names.

    ``id2label`` / ``label2id`` describe a task head's outputs; ``num_labels`` is derived from
    them (2 when no labels are set, as in transformers). ``num_labels == 1`` means regression.
    """

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    classifier_dropout: float | None = None  # None: use hidden_dropout_prob (as transformers)
    id2label: dict[int, str] = field(default_factory=dict)
    label2id: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.id2label = {int(k): str(v) for k, v in self.id2label.items()}
        if self.id2label and not self.label2id:
            self.label2id = {v: k for k, v in self.id2label.items()}
        self.label2id = {str(k): int(v) for k, v in self.label2id.items()}
        if self.label2id and not self.id2label:
            self.id2label = {v: k for k, v in self.label2id.items()}
        self.validate()

    # ------------------------------------------------------------------ labels
    @property
    def num_labels(self) -> int:
        """Number of task outputs: ``len(id2label)``, or 2 when no labels are set."""
        return len(self.id2label) if self.id2label else 2

    @num_labels.setter
    def num_labels(self, n: int) -> None:
        if n < 1:
            raise BertkitError(f"num_labels must be >= 1, got {n}")
        if n != len(self.id2label):
            self.id2label = {i: f"LABEL_{i}" for i in range(n)}
            self.label2id = {v: k for k, v in self.id2label.items()}

    def set_labels(self, labels: list[str]) -> None:
        """Name the task outputs in order (``labels[i]`` is output ``i``)."""
        self.id2label = {i: str(lab) for i, lab in enumerate(labels)}
        self.label2id = {v: k for k, v in self.id2label.items()}

    # ------------------------------------------------------------------ checks
    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def validate(self) -> None:
        """Raise :class:`BertkitError` if the numbers cannot form a model."""
        for name in (
            "vocab_size",
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "max_position_embeddings",
            "type_vocab_size",
        ):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise BertkitError(f"config: {name} must be a positive integer, got {v!r}")
        if self.hidden_size % self.num_attention_heads:
            raise BertkitError(
                f"config: hidden_size {self.hidden_size} is not a multiple of "
                f"num_attention_heads {self.num_attention_heads}"
            )
        if self.hidden_act not in SUPPORTED_ACTIVATIONS:
            raise BertkitError(
                f"config: hidden_act {self.hidden_act!r} is not supported "
                f"(choose from {', '.join(SUPPORTED_ACTIVATIONS)})"
            )
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, (int, float)) and 0 <= v < 1):
                raise BertkitError(f"config: {name} must be a probability in [0, 1), got {v!r}")
        if not (isinstance(self.layer_norm_eps, (int, float)) and self.layer_norm_eps > 0):
            raise BertkitError(f"config: layer_norm_eps must be > 0, got {self.layer_norm_eps!r}")
        if not (isinstance(self.initializer_range, (int, float)) and self.initializer_range >= 0):
            raise BertkitError(f"config: initializer_range must be >= 0, got {self.initializer_range!r}")
        if not 0 <= self.pad_token_id < self.vocab_size:
            raise BertkitError(f"config: pad_token_id {self.pad_token_id} outside vocab_size {self.vocab_size}")

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> BertConfig:
        """A named size (tiny, mini, small, medium, base, large), with keyword overrides."""
        if name not in PRESETS:
            raise BertkitError(f"unknown model preset {name!r} (choose from {', '.join(PRESETS)})")
        layers, hidden, heads = PRESETS[name]
        base = dict(
            num_hidden_layers=layers, hidden_size=hidden, num_attention_heads=heads, intermediate_size=4 * hidden
        )
        base.update(overrides)
        return cls.from_dict(base)

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> BertConfig:
        """Build from a ``config.json``-style dict; unknown keys are ignored.

        ``num_labels`` is accepted as a key (it sets ``LABEL_i`` names unless ``id2label`` is
        given). Architecture keys bertkit does not implement raise :class:`BertkitError`.
        """
        for key, ok in _REFUSED_VALUES.items():
            if key in d and d[key] not in (ok, None):
                raise BertkitError(f"{source}: {key}={d[key]!r} is not supported (only {ok!r})")
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in known}
        try:
            cfg = cls(**kwargs)
        except BertkitError as e:
            raise BertkitError(f"{source}: {e}") from None
        except (TypeError, ValueError, AttributeError) as e:
            raise BertkitError(f"{source}: invalid value: {e}") from None
        if "num_labels" in d and not cfg.id2label:
            cfg.num_labels = int(d["num_labels"])
        return cfg

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> BertConfig:
        """Read ``config.json`` from a checkpoint directory (or the file itself); a Google
        TensorFlow checkpoint directory's ``bert_config.json``; a Hub name's cached copy."""
        p = resolve(path)
        if p.is_dir():
            if (p / CONFIG_NAME).is_file():
                p = p / CONFIG_NAME
            elif (p / GOOGLE_CONFIG_NAME).is_file():
                p = p / GOOGLE_CONFIG_NAME
            elif any(p.glob("*.index")):
                raise BertkitError(
                    f"{p / GOOGLE_CONFIG_NAME}: no such file (a Google BERT checkpoint directory ships its "
                    f"{GOOGLE_CONFIG_NAME})"
                )
            else:
                raise BertkitError(
                    f"{p / CONFIG_NAME}: no such file (not a checkpoint directory: no config.json, "
                    "no TensorFlow *.index file)"
                )
        elif not p.exists():
            raise BertkitError(f"{p}: no such checkpoint directory")
        d = read_json(p)
        if d.get("model_type", "bert") != "bert":
            raise BertkitError(f"{p}: model_type {d['model_type']!r} is not a BERT model")
        return cls.from_dict(d, source=str(p))

    # ------------------------------------------------------------------ output
    def to_dict(self) -> dict[str, Any]:
        """The ``config.json`` content: HF keys, ``model_type: bert``, string label ids."""
        d: dict[str, Any] = {"model_type": "bert"}
        for f in dataclasses.fields(self):
            d[f.name] = getattr(self, f.name)
        d["id2label"] = {str(k): v for k, v in self.id2label.items()}
        d["label2id"] = dict(self.label2id)
        if not self.id2label:
            del d["id2label"], d["label2id"]
        d["position_embedding_type"] = "absolute"
        return d

    def save(self, directory: str | os.PathLike, architectures: list[str] | None = None) -> None:
        """Write ``config.json`` into ``directory`` (atomically)."""
        d = self.to_dict()
        if architectures:
            d = {"architectures": list(architectures), **d}
        atomic_write_json(Path(directory) / CONFIG_NAME, d)
