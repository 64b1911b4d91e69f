"""Checkpoint directories: save and load models under Hugging Face BERT tensor names.

A checkpoint is a directory with ``config.json``, ``model.safetensors`` (or HF's older
``pytorch_model.bin``), and, when a tokenizer is saved with it, ``vocab.txt`` +
``tokenizer_config.json``. Loading maps names with or without the ``bert.`` prefix, old
TF-converted ``gamma``/``beta`` LayerNorm names, and the tied MLM decoder; it initialises
missing heads, ignores tensors the model has no use for, refuses missing or mis-shaped encoder
tensors, and refuses mis-shaped head tensors unless ``ignore_mismatched_sizes=True``, always
with one message listing what was missing / unexpected / mis-shaped. A model with a NaN or
infinite weight is refused naming the first such tensor (:func:`check_finite`, reusable by any
command that runs or ships a model).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from bertkit.config import CONFIG_NAME, GOOGLE_CONFIG_NAME, BertConfig
from bertkit.errors import BertkitError
from bertkit.fileio import atomic_dir, publish_mode, read_json
from bertkit.hub import resolve
from bertkit.tf_checkpoint import bert_tensor_names, is_tf_checkpoint_dir, load_bert_state_dict

log = logging.getLogger("bertkit")

SAFETENSORS_NAME = "model.safetensors"
SAFETENSORS_INDEX_NAME = "model.safetensors.index.json"
PYTORCH_NAME = "pytorch_model.bin"

TIED_DECODER = "cls.predictions.decoder.weight"
DECODER_BIAS = "cls.predictions.decoder.bias"
MLM_BIAS = "cls.predictions.bias"
WORD_EMBEDDINGS = "embeddings.word_embeddings.weight"
# Encoder tensors every checkpoint must have; other missing tensors (heads, pooler) are
# initialised and reported.
_ENCODER_PREFIXES = ("embeddings.", "encoder.")
# Tensors in HF checkpoints that are buffers, not weights.
_IGNORED = re.compile(r"(^|\.)embeddings\.position_ids$")

M = TypeVar("M", bound="PretrainedMixin")


@dataclass
class LoadReport:
    """What :meth:`PretrainedMixin.from_pretrained` did not load one-to-one."""

    missing: list[str] = field(default_factory=list)  # initialised fresh
    unexpected: list[str] = field(default_factory=list)  # in the file, not used by the model
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.mismatched)

    def message(self) -> str:
        """One line: ``missing (initialised): a, b; unexpected (ignored): c; ...``."""
        parts = []
        if self.missing:
            parts.append(f"missing (initialised): {_short(self.missing)}")
        if self.unexpected:
            parts.append(f"unexpected (ignored): {_short(self.unexpected)}")
        if self.mismatched:
            shapes = [f"{k} {list(a)} in file vs {list(b)} in model" for k, a, b in self.mismatched]
            parts.append(f"mis-shaped: {_short(shapes)}")
        return "; ".join(parts)


def _short(items: list[str], limit: int = 8) -> str:
    more = f", ... ({len(items) - limit} more)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


# --------------------------------------------------------------------------- reading files
def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path), device="cpu")
    except Exception as e:  # safetensors raises SafetensorError / OSError / ValueError
        raise BertkitError(f"{path}: cannot read safetensors file (truncated or corrupt?): {e}") from None


def _load_bin(path: Path) -> dict[str, torch.Tensor]:
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle / zip errors, or non-tensor objects refused by weights_only
        raise BertkitError(f"{path}: cannot read PyTorch checkpoint safely: {e}") from None
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise BertkitError(f"{path}: expected a dict of tensors (a state dict)")
    return sd


def read_state_dict(directory: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read the weights of a checkpoint directory as a flat ``{name: tensor}`` dict.

    Prefers ``model.safetensors`` (also sharded, via its ``.index.json``), then
    ``pytorch_model.bin`` loaded with ``weights_only=True`` (no arbitrary code runs). A Google
    TensorFlow checkpoint directory (``bert_model.ckpt.*`` + ``bert_config.json``, no
    ``config.json``) is read by :mod:`bertkit.tf_checkpoint`, without TensorFlow.
    """
    d = Path(directory)
    if not d.is_dir():
        raise BertkitError(f"{d}: no such checkpoint directory")
    if is_tf_checkpoint_dir(d):
        return _load_tf(d)
    if (d / SAFETENSORS_NAME).is_file():
        return _load_safetensors(d / SAFETENSORS_NAME)
    if (d / SAFETENSORS_INDEX_NAME).is_file():
        index = read_json(d / SAFETENSORS_INDEX_NAME)
        shards = sorted(set(index.get("weight_map", {}).values()))
        if not shards:
            raise BertkitError(f"{d / SAFETENSORS_INDEX_NAME}: no weight_map")
        sd: dict[str, torch.Tensor] = {}
        for shard in shards:
            sd.update(_load_safetensors(d / shard))
        return sd
    if (d / PYTORCH_NAME).is_file():
        return _load_bin(d / PYTORCH_NAME)
    raise BertkitError(f"{d}: no {SAFETENSORS_NAME} or {PYTORCH_NAME} in checkpoint directory")


def tensor_names(directory: str | os.PathLike) -> set[str]:
    """The tensor names of a checkpoint directory, from the safetensors header or the TF index
    when there is one (no tensor data read), else from :func:`read_state_dict`."""
    d = Path(directory)
    if is_tf_checkpoint_dir(d):
        return bert_tensor_names(d)
    single = d / SAFETENSORS_NAME
    if single.is_file():
        try:
            with safe_open(str(single), framework="pt") as f:
                return set(f.keys())
        except Exception as e:  # a damaged file: one line, as read_state_dict would say
            raise BertkitError(f"{single}: cannot read safetensors header ({e})") from None
    return set(read_state_dict(d))


def _load_tf(d: Path) -> dict[str, torch.Tensor]:
    """A Google TensorFlow checkpoint directory's weights under HF names (see tf_checkpoint)."""
    arrays, report = load_bert_state_dict(d)
    if report.skipped_training_state:
        log.info("%s: skipped %d optimizer / step variables", d, report.skipped_training_state)
    if report.unknown:
        log.warning("%s: ignoring variables that are not BERT weights: %s", d, _short(report.unknown))
    return {k: torch.from_numpy(v) for k, v in arrays.items()}


def resolve_pretrained(path: str | os.PathLike) -> Path:
    """The local checkpoint directory for ``path``: a directory (HF layout or Google TF), or
    a Hub name's cached snapshot. The one entry every loader goes through."""
    d = resolve(path)
    if not d.is_dir() and Path(f"{d}.index").is_file():
        raise BertkitError(
            f"{d}: a TensorFlow checkpoint prefix; pass its directory {d.parent} (bertkit reads "
            "bert_model.ckpt there, else the only *.index, else the one its 'checkpoint' file names)"
        )
    if not d.is_dir():
        raise BertkitError(f"{d}: no such checkpoint directory")
    return d


def config_file_name(directory: Path) -> str:
    """``config.json``, or ``bert_config.json`` for a Google TensorFlow checkpoint."""
    return GOOGLE_CONFIG_NAME if is_tf_checkpoint_dir(directory) else CONFIG_NAME


# --------------------------------------------------------------------------- name mapping
def _normalise_name(name: str) -> str:
    """Old TF-converted names: LayerNorm ``gamma``/``beta`` -> ``weight``/``bias``."""
    if ".LayerNorm." in name or name.startswith("LayerNorm."):
        if name.endswith(".gamma"):
            return name[: -len("gamma")] + "weight"
        if name.endswith(".beta"):
            return name[: -len("beta")] + "bias"
    return name


def map_state_dict(sd: dict[str, torch.Tensor], model_keys: set[str]) -> dict[str, torch.Tensor]:
    """Rename checkpoint tensors to the model's names.

    Handles the ``bert.`` prefix both ways (a bare ``BertModel`` checkpoint into a head model,
    a ``BertFor*`` checkpoint into ``BertModel``), the tied decoder (dropped: it is the word
    embedding matrix), and ``cls.predictions.decoder.bias`` as an alias of the MLM bias.
    """
    has_prefix = any(k.startswith("bert.") for k in model_keys)
    out: dict[str, torch.Tensor] = {}
    for name, t in sd.items():
        name = _normalise_name(name)
        if _IGNORED.search(name):
            continue
        if has_prefix and name.startswith(("embeddings.", "encoder.", "pooler.")):
            name = "bert." + name
        elif not has_prefix and name.startswith("bert."):
            name = name[len("bert.") :]
        out[name] = t
    if DECODER_BIAS in out:
        bias = out.pop(DECODER_BIAS)
        out.setdefault(MLM_BIAS, bias)
    if TIED_DECODER in out and "bert." + WORD_EMBEDDINGS in model_keys:
        decoder = out.pop(TIED_DECODER)
        out.setdefault("bert." + WORD_EMBEDDINGS, decoder)
    return out


def load_into(
    model: torch.nn.Module,
    sd: dict[str, torch.Tensor],
    source: str,
    ignore_mismatched_sizes: bool = False,
) -> LoadReport:
    """Copy ``sd`` into ``model`` (names already mapped); return what did not match.

    Raises :class:`BertkitError` when encoder tensors are missing or mis-shaped, or head
    tensors are mis-shaped and ``ignore_mismatched_sizes`` is False.
    """
    own = model.state_dict()
    report = LoadReport()
    loadable: dict[str, torch.Tensor] = {}
    for name, t in sd.items():
        if name not in own:
            report.unexpected.append(name)
        elif tuple(t.shape) != tuple(own[name].shape):
            report.mismatched.append((name, tuple(t.shape), tuple(own[name].shape)))
        else:
            loadable[name] = t
    report.missing = [k for k in own if k not in sd]
    missing_encoder = [k for k in report.missing if k.removeprefix("bert.").startswith(_ENCODER_PREFIXES)]
    if missing_encoder:
        raise BertkitError(f"{source}: not a complete BERT checkpoint for {type(model).__name__}: {report.message()}")
    mismatched_encoder = [k for k, _, _ in report.mismatched if k.removeprefix("bert.").startswith(_ENCODER_PREFIXES)]
    if mismatched_encoder:  # never re-initialise part of the encoder behind the caller's back
        raise BertkitError(
            f"{source}: encoder tensors do not fit {type(model).__name__} "
            f"(config.json and weights disagree?): {report.message()}"
        )
    if report.mismatched and not ignore_mismatched_sizes:
        raise BertkitError(
            f"{source}: checkpoint does not fit {type(model).__name__} "
            f"(pass ignore_mismatched_sizes=True to initialise those tensors fresh): "
            f"{report.message()}"
        )
    report.missing += [k for k, _, _ in report.mismatched]
    model.load_state_dict(loadable, strict=False)
    return report


# --------------------------------------------------------------------------- finiteness
def first_non_finite(tensors: Mapping[str, torch.Tensor] | torch.nn.Module) -> tuple[str, int, int] | None:
    """``(name, n_nan, n_inf)`` of the first floating-point tensor (in state-dict order) holding a
    NaN or an infinity, or ``None`` when every value is finite. Takes a state dict or a module."""
    if isinstance(tensors, torch.nn.Module):
        tensors = tensors.state_dict()
    for name, t in tensors.items():
        if not (t.is_floating_point() or t.is_complex()):
            continue
        finite = torch.isfinite(t.detach())
        if not bool(finite.all()):
            n_nan = int(torch.isnan(t.detach()).sum())
            return name, n_nan, int((~finite).sum()) - n_nan
    return None


def check_finite(tensors: Mapping[str, torch.Tensor] | torch.nn.Module, source: str) -> None:
    """Refuse a model (or state dict) with a NaN / infinite weight: :class:`BertkitError` naming
    ``source`` and the first offending tensor. Every command that runs or ships a model calls it
    (via :meth:`PretrainedMixin.from_pretrained`), so a diverged or corrupt checkpoint never gives
    normal-looking metrics or ``NaN`` outputs."""
    bad = first_non_finite(tensors)
    if bad is not None:
        name, n_nan, n_inf = bad
        raise BertkitError(
            f"{source}: tensor {name} is not finite ({n_nan} NaN, {n_inf} infinite values); "
            f"the model is unusable (diverged training or a corrupt file)"
        )


# --------------------------------------------------------------------------- the mixin
class PretrainedMixin:
    """``from_pretrained`` / ``save_pretrained`` for every bertkit model class.

    Subclasses are ``nn.Module``s built as ``cls(config)`` with a ``config`` attribute.
    After loading, ``model.loading_info`` holds the :class:`LoadReport`.
    """

    config: BertConfig
    loading_info: LoadReport

    @classmethod
    def from_pretrained(
        cls: type[M],
        path: str | os.PathLike,
        *,
        ignore_mismatched_sizes: bool = False,
        allow_non_finite: bool = False,
        **config_overrides: Any,
    ) -> M:
        """Load a checkpoint: a directory (bertkit's, Hugging Face's, or an original Google
        TensorFlow checkpoint such as ``uncased_L-12_H-768_A-12/``) or a Hugging Face Hub name
        (``google-bert/bert-base-uncased``, looked up in the local Hugging Face cache, see
        :mod:`bertkit.hub`).

        ``config_overrides`` replace ``config.json`` values (e.g. ``num_labels=3``,
        ``id2label={...}``, ``hidden_dropout_prob=0.0``). Missing heads are initialised and
        reported in ``model.loading_info`` and a log warning; a mis-shaped tensor (e.g. a new
        ``num_labels``) is refused unless ``ignore_mismatched_sizes=True``.
        """
        path = resolve_pretrained(path)
        cfg = BertConfig.from_pretrained(path)
        if config_overrides:
            cfg = with_overrides(cfg, config_overrides, source=str(path / config_file_name(path)))
        model = cls(cfg)
        sd = map_state_dict(read_state_dict(path), set(model.state_dict()))
        report = load_into(model, sd, str(path), ignore_mismatched_sizes)
        if not allow_non_finite:
            check_finite(model, str(path))
        if report:
            log.warning("loading %s into %s: %s", path, cls.__name__, report.message())
        model.loading_info = report
        model.eval()
        return model

    def writes_tied_decoder(self) -> bool:
        """Whether :meth:`save_pretrained` stores the tied MLM decoder (a second copy of the
        word embeddings)."""
        keys = self.state_dict().keys()
        return MLM_BIAS in keys and "bert." + WORD_EMBEDDINGS in keys

    def saved_bytes(self) -> int:
        """Bytes of the ``model.safetensors`` that :meth:`save_pretrained` writes (tensors only),
        the tied decoder's second copy of the word embeddings included."""
        sd = self.state_dict()
        total = sum(t.numel() * t.element_size() for t in sd.values())
        if self.writes_tied_decoder():
            emb = sd["bert." + WORD_EMBEDDINGS]
            total += emb.numel() * emb.element_size()
        return total

    def save_pretrained(self, directory: str | os.PathLike, tokenizer: Any = None) -> Path:
        """Write ``config.json`` + ``model.safetensors`` (+ the tokenizer's files) atomically.

        The directory is built under a temporary name and renamed into place, REPLACING any
        existing directory of that name: pass the ``tokenizer`` here rather than saving it
        into the directory first. ``cls.predictions.decoder.weight`` is written as well (a
        copy of the tied word embeddings), as original BERT checkpoints have it.
        """
        directory = Path(directory)
        sd = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        if self.writes_tied_decoder():
            sd[TIED_DECODER] = sd["bert." + WORD_EMBEDDINGS].clone()
        with atomic_dir(directory) as tmp:
            self.config.save(tmp, architectures=[type(self).__name__])
            save_file(sd, str(tmp / SAFETENSORS_NAME), metadata={"format": "pt"})
            publish_mode(tmp / SAFETENSORS_NAME)  # readable as the umask says, like config.json
            if tokenizer is not None:
                tokenizer.save(tmp)
        return directory


def with_overrides(cfg: BertConfig, overrides: dict[str, Any], source: str) -> BertConfig:
    """A copy of ``cfg`` with ``overrides`` applied. A new ``num_labels`` without ``id2label``
    replaces the labels with ``LABEL_i`` names."""
    known = {f.name for f in dataclasses.fields(BertConfig)} | {"num_labels"}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise BertkitError(f"{source}: unknown config key(s) {', '.join(unknown)}")
    d = cfg.to_dict()
    if "num_labels" in overrides and "id2label" not in overrides and "label2id" not in overrides:
        if int(overrides["num_labels"]) != cfg.num_labels or not cfg.id2label:
            d.pop("id2label", None)
            d.pop("label2id", None)
    elif "id2label" in overrides or "label2id" in overrides:
        d.pop("id2label", None)
        d.pop("label2id", None)
    d.update(overrides)
    return BertConfig.from_dict(d, source=f"{source} (with overrides)")
