"""Settings: the allowed values of every choice, and settings dataclasses read from files,
``key=value`` strings and command-line flags, all derived from the dataclass fields.

A ``Literal`` type is the only list of a choice's allowed values (``choices(Precision)`` gives
them as a tuple). A settings dataclass documents each field with a trailing ``# comment``;
:func:`field_docs` reads those comments, so the ``--help`` text, the defaults and the types
shown by a command come from the dataclass and are never restated. Torch-free, so that
``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import functools
import inspect
import io
import textwrap
import tokenize
import typing
from pathlib import Path
from typing import Any, Literal

from bertkit.errors import BertkitError

Precision = Literal["fp32", "bf16", "fp16"]  # fp16 uses loss scaling (for CUDA; slow on CPU)
QuickstartPrecision = Literal["auto", "fp32", "bf16"]  # auto: bf16 where this CPU/GPU runs it fast
Optimizer = Literal["adamw", "lamb"]
Schedule = Literal["linear", "cosine", "constant"]  # all after linear warmup
DivergenceAction = Literal["rollback", "stop"]
CorpusFormat = Literal["auto", "bert", "text", "jsonl"]
Masking = Literal["static", "dynamic"]
EncodingErrors = Literal["strict", "replace"]
Split = Literal["train", "validation"]
TaskName = Literal["classification", "pair", "regression", "tagging", "qa", "choice"]
Pooling = Literal["mean", "cls", "max"]  # sentence embeddings (bertkit.inference)
InferencePrecision = Literal["fp32", "bf16", "auto"]  # auto: bf16 only where the hardware has bf16 matmul units
ExportKind = Literal["auto", "embedding", "fill-mask"]  # what a checkpoint without a task exports
Quantization = Literal["int8"]  # onnxruntime dynamic quantization of the matmul weights
TfGelu = Literal["erf", "tanh"]  # the GELU a converted Google checkpoint computes

# Task defaults quoted in several places: the sequence length of every task but QA (and of
# ``bertkit prepare``), QA's, and the similarity task's.
DEFAULT_MAX_SEQ_LENGTH = 128
QA_MAX_SEQ_LENGTH = 384
SIMILARITY_MAX_SEQ_LENGTH = 256
TASK_BATCH_SIZE = 64  # examples per batch of bertkit evaluate / predict on a task checkpoint


@dataclasses.dataclass
class InferenceOptions:
    """How :func:`bertkit.load` runs a model: the options every inference command shares (the
    defaults of ``bertkit.load`` and of ``embed`` / ``fill-mask``; ``evaluate`` / ``predict``
    use ``TASK_BATCH_SIZE`` and call the length ``--max-seq-length``)."""

    batch_size: int = 256  # most texts in one batch
    max_tokens: int = 16384  # most tokens in one batch, padding included
    max_length: int | None = None  # truncate inputs to this many tokens (default: the model's maximum)
    precision: InferencePrecision = "fp32"  # bf16: fast only with bf16 matrix units; auto: bf16 only there
    device: str = "auto"  # auto (CUDA if present), cpu, cuda, cuda:N


@dataclasses.dataclass
class EmbedOptions:
    """How texts become sentence embeddings: ``Predictor.embed`` / ``iter_embed`` and ``bertkit
    embed`` (``pooling`` is also the default of ``bertkit export`` and ``bertkit serve``)."""

    pooling: Pooling = "mean"  # token vectors -> one vector: mean of the real tokens, [CLS]'s vector, or max
    normalize: bool = False  # L2-normalise each embedding
    chunk_size: int = 8192  # texts read, sorted by length and embedded at a time (bounds memory)


@dataclasses.dataclass
class TextFileOptions:
    """Which text of each record an input file holds (``bertkit embed``, ``embedding_files.iter_input_texts``)."""

    column: str | None = None  # .tsv: the text column, by name or 0-based position (default: text / sentence)
    text_field: str = "text"  # .jsonl: the field holding the text


@dataclasses.dataclass
class FillMaskOptions:
    """``Predictor.fill_mask`` and ``bertkit fill-mask``."""

    top_k: int = 5  # most likely tokens shown per [MASK]
    lines_per_batch: int = 256  # stdin lines read before predicting (piped input)


@dataclasses.dataclass
class TokenizeOptions:
    """``bertkit tokenize``."""

    pair: bool = False  # lines are TEXT<TAB>PAIR, encoded as a pair
    max_length: int | None = None  # truncate to this many tokens
    batch_size: int = 1000  # lines encoded at once (piped input; a terminal gets each line at once)


@dataclasses.dataclass
class VocabOptions:
    """How a WordPiece vocabulary is learned: ``bertkit vocab`` and the defaults of
    ``bertkit.tokenization.train_vocab``."""

    vocab_size: int = 30000  # total tokens, specials and [unusedN] included
    cased: bool = False  # keep case and accents (off: lowercase and strip accents, an uncased vocabulary)
    unused: int = 0  # reserve N [unusedI] tokens after the specials
    min_frequency: int = 2  # minimum count of a merged piece
    limit_alphabet: int | None = 1000  # keep the N most frequent characters; rarer ones become [UNK]
    preserve_hangul_kana: bool = True  # keep Hangul syllables and kana whole when stripping accents (BERT splits them)
    encoding_errors: EncodingErrors = "strict"  # invalid UTF-8: stop with an error (strict) or read U+FFFD (replace)


@dataclasses.dataclass
class ExportOptions:
    """What ``bertkit export`` / ``bertkit.export.export_onnx`` write besides model.onnx."""

    kind: ExportKind = "auto"  # a checkpoint without a task: auto = fill-mask when it has an MLM head, else embedding
    pooling: Pooling = EmbedOptions.pooling  # embedding pooling inside the graph
    quantize: Quantization | None = None  # also write model.int8.onnx (dynamic quantization of the matmul weights)
    eval_file: str | None = None  # labelled dev file: the metric of torch fp32, onnx fp32 (+ int8) and the change


@dataclasses.dataclass
class ConvertOptions:
    """``bertkit convert --from-tf``."""

    gelu: TfGelu = "erf"  # erf: exact (hidden_act gelu, as transformers converts); tanh: gelu_new, as the TF code


def choices(literal: Any) -> tuple:
    """The allowed values of a ``Literal`` type, in order."""
    return typing.get_args(literal)


def check_choice(name: str, value: Any, literal: Any) -> None:
    """Raise :class:`BertkitError` ``NAME must be one of ... (got VALUE)`` unless ``value`` is allowed."""
    allowed = choices(literal)
    if value not in allowed:
        raise BertkitError(f"{name} must be one of {', '.join(map(str, allowed))} (got {value!r})")


# ----------------------------------------------------------------------------------------------
# field documentation, types, values


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """Each field's trailing ``# comment`` in the class body (base classes included): the first
    comment of the field's logical line, however the formatter wrapped it."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        source = textwrap.dedent(inspect.getsource(klass))
        line: list[tokenize.TokenInfo] = []
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.NEWLINE:
                comments = [t.string for t in line if t.type == tokenize.COMMENT]
                if len(line) > 1 and line[0].start[1] == 4 and line[0].type == tokenize.NAME and line[1].string == ":":
                    if comments:
                        docs[line[0].string] = comments[0].lstrip("#").strip()
                line = []
            elif tok.type not in (tokenize.NL, tokenize.INDENT, tokenize.DEDENT) and (
                line or tok.type != tokenize.COMMENT
            ):
                line.append(tok)
    return docs


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _base_type(hint: Any) -> tuple[Any, bool]:
    """``(type without None, whether None is allowed)`` of a field's type hint."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) is Literal:
        return hint, False
    optional = type(None) in args
    if args and optional:
        rest = [a for a in args if a is not type(None)]
        return rest[0], True
    return hint, False


def coerce(cls: type, key: str, value: Any, source: str) -> Any:
    """``value`` converted to the type of field ``key`` of ``cls``; strings are parsed (``none``,
    ``true``, numbers). Unknown keys and ill-typed values raise :class:`BertkitError` naming ``source``."""
    names = [f.name for f in dataclasses.fields(cls)]
    if key not in names:
        close = difflib.get_close_matches(key, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f" (known keys: {', '.join(names)})"
        raise BertkitError(f"{source}: unknown key {key!r}{hint}")
    base, optional = _base_type(_hints(cls)[key])
    if isinstance(value, str) and optional and value.strip().lower() in ("none", "null", ""):
        return None
    if value is None:
        if optional:
            return None
        raise BertkitError(f"{source}: {key} cannot be null")
    if typing.get_origin(base) is Literal:
        allowed = choices(base)
        if value in allowed:
            return value
        raise BertkitError(f"{source}: {key} must be one of {', '.join(map(str, allowed))} (got {value!r})")
    try:
        if base is bool:
            if isinstance(value, bool):
                return value
            s = str(value).strip().lower()
            if s in ("1", "true", "yes", "on"):
                return True
            if s in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if base is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(float(value)) if isinstance(value, str) and "e" in value.lower() else int(value)
        if base is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if base is str:
            if not isinstance(value, (str, Path)):
                raise ValueError
            return str(value)
    except (TypeError, ValueError):
        pass
    name = getattr(base, "__name__", str(base))
    raise BertkitError(f"{source}: {key}: expected {name}{' or none' if optional else ''}, got {value!r}")


def updated(obj: Any, values: dict[str, Any], source: str) -> Any:
    """A copy of dataclass ``obj`` with ``values`` (coerced, checked) replaced."""
    cls = type(obj)
    return dataclasses.replace(obj, **{k: coerce(cls, k, v, source) for k, v in values.items()})


def parse_overrides(items: list[str], source: str = "command line") -> dict[str, str]:
    """``["key=value", ...]`` -> ``{key: value}`` (values still strings)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise BertkitError(f"{source}: override {item!r}: expected key=value")
        out[key.strip()] = value
    return out


# ----------------------------------------------------------------------------------------------
# command-line flags


def flag(name: str) -> str:
    """The flag of field ``name``: ``max_steps`` -> ``--max-steps``."""
    return "--" + name.replace("_", "-")


def add_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    defaults: Any,
    *,
    only: typing.Iterable[str] | None = None,
    skip: typing.Iterable[str] = (),
    names: dict[str, str] | None = None,
    helps: dict[str, str] | None = None,
    required: typing.Iterable[str] = (),
    suppress: bool = False,
) -> None:
    """One flag per field of the dataclass instance ``defaults``: ``--field-name`` (or
    ``names[field]``), typed, choices from a ``Literal``, help from the field's comment (or
    ``helps[field]``) with the default shown (unless ``required``); booleans get ``--x`` / ``--no-x``. The parsed
    value lands in ``args.<field>``; with ``suppress`` an absent flag leaves no attribute (so
    callers can tell given flags from defaults), else it is the default."""
    cls = type(defaults)
    docs = field_docs(cls)
    names, helps, skip = names or {}, helps or {}, set(skip)
    wanted = set(only) if only is not None else None
    for f in dataclasses.fields(cls):
        if f.name in skip or (wanted is not None and f.name not in wanted):
            continue
        base, optional = _base_type(_hints(cls)[f.name])
        default = getattr(defaults, f.name)
        text = helps.get(f.name, docs.get(f.name, ""))
        kw: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS if suppress else default}
        if base is bool:
            kw["action"] = argparse.BooleanOptionalAction
            text = f"{text} (default: {'on' if default else 'off'})".strip()
        else:
            if typing.get_origin(base) is Literal:
                kw["choices"] = choices(base)
                kw["type"] = type(choices(base)[0])
            elif base in (int, float, str):
                kw["type"] = base
            else:
                continue  # dicts, lists: set in config files or from Python only
            if f.name in required:
                kw["required"] = True
                del kw["default"]
            elif default not in (None, ""):
                text = f"{text} (default: {default})".strip()
        name = names.get(f.name, flag(f.name))
        if base is not bool and "choices" not in kw:
            kw["metavar"] = name.lstrip("-").replace("-", "_").upper()
        parser.add_argument(name, help=text or None, **kw)


def given(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The fields of ``cls`` present in ``args`` (flags added with ``suppress=True`` and given)."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}


def from_args(args: argparse.Namespace, cls: type, **extra: Any) -> Any:
    """A ``cls`` from the flags in ``args`` (added by :func:`add_flags`) plus ``extra``."""
    return cls(**{**given(args, cls), **extra})
