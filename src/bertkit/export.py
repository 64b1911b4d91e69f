"""ONNX export of what a model does, checked against bertkit's own torch outputs before it is kept.

::

    from bertkit.export import export_onnx
    info = export_onnx("runs/sst2", "exports/sst2", quantize="int8", eval_file="dev.tsv")
    info["parity"]["fp32"]["max_abs_diff"]      # <= 1e-4, or nothing was written

What is exported (inputs ``input_ids``, ``attention_mask``, ``token_type_ids``: int64 ``(batch,
sequence)``; both axes dynamic):

* an encoder (no heads) -> ``embedding`` ``(batch, hidden)``: the pooling (``mean`` over real
  tokens, sentence-transformers' default, or ``cls``) runs inside the graph; L2 normalisation is
  left to the caller (``bertkit serve`` applies it per request);
* a pre-training checkpoint (MLM head) -> ``logits`` ``(batch, sequence, vocab)`` (fill-mask);
* a fine-tuned task directory (``task.json``) -> the task head: ``logits`` ``(batch, labels)``
  (classification, pair, regression), ``(batch, sequence, labels)`` (tagging),
  ``start_logits`` + ``end_logits`` ``(batch, sequence)`` (qa), ``logits`` ``(batch, choices)``
  with inputs ``(batch, choices, sequence)`` (choice).

The output directory holds ``model.onnx`` (+ ``model.int8.onnx`` with ``quantize="int8"``:
onnxruntime dynamic quantization of the matmul weights), the tokenizer files, ``config.json``
(+ ``task.json``) and ``export.json`` (opset, input / output names and shapes, parity figures,
the ``--eval`` metrics). It is built under a temporary name and renamed into place only after
onnxruntime reproduces the torch outputs on real text within ``TOLERANCE`` (fp32), so a failing
model is never written.

Exporter: torch's TorchScript-based ``torch.onnx.export(..., dynamo=False)``. On torch 2.13 the
dynamo exporter (the default; it needs ``onnxscript``) took 4x longer on MiniLM and wrote a graph
onnxruntime refused ("Duplicate definition of name"); the TorchScript path exports in seconds,
needs only ``onnx``, and its graphs are checked here anyway. It traces one example: that example
has a padded row so the traced graph always applies the attention mask (the model skips the mask
when nothing is padded, a branch a trace would otherwise freeze).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bertkit import __version__, metrics, outputs
from bertkit.config import BertConfig
from bertkit.errors import BertkitError
from bertkit.fileio import atomic_dir, atomic_write_json, read_json
from bertkit.inference import DEFAULT_BATCH_SIZE, DEFAULT_MAX_TOKENS, POOLINGS, Predictor, load, pool_tokens
from bertkit.settings import ExportKind, ExportOptions, Quantization, choices
from bertkit.tasks import get_task
from bertkit.tasks.checkpoints import TASK_FILE
from bertkit.tasks.classification import read_text_examples
from bertkit.tasks.regression import SCORE_COLUMNS
from bertkit.tokenization import Tokenizer

OPSET = 17
TOLERANCE = 1e-4
MODEL_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
EXPORT_FILE = "export.json"
KINDS = choices(ExportKind)
INPUT_NAMES = ["input_ids", "attention_mask", "token_type_ids"]
MISSING_HINT = "pip install 'bertkit[serve]'"

# Real sentences of varied length for the parity check (the dev file's texts come first when
# --eval is given). Pair tasks pair neighbours; fill-mask replaces one word with [MASK].
PARITY_TEXTS = [
    "A man is eating food.",
    "The new movie is awesome, and the soundtrack is even better than the reviews said.",
    "Paris is the capital of France.",
    "it's a charming and often affecting journey .",
    "The committee postponed its decision until the financial report for the third quarter "
    "had been reviewed by independent auditors in London and New York.",
    "unflinchingly bleak and desperate",
    "Rain is expected tomorrow in the northern valleys, with snow above 1,500 metres.",
    "Who wrote the novel that the film was based on?",
]


def require_onnx() -> tuple[Any, Any]:
    """``(onnx, onnxruntime)``, or one line saying how to install them."""
    try:
        import onnx
        import onnxruntime
    except ImportError as e:
        raise BertkitError(
            f"ONNX needs the optional packages onnx and onnxruntime ({e.name} is missing): {MISSING_HINT}"
        ) from None
    return onnx, onnxruntime


def ort_session(path: str | Path, threads: int | None = None) -> Any:
    """An onnxruntime CPU session for ``path`` (``threads``: intra-op threads, None = ORT's default)."""
    _, ort = require_onnx()
    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
    so.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own Fail / InvalidGraph types
        raise BertkitError(f"{path}: onnxruntime cannot load this model: {e}") from None


# ------------------------------------------------------------------------------------- graphs
class EmbeddingGraph(nn.Module):
    """Encoder + pooling: (B, T) ids -> (B, H) sentence embeddings (not normalised)."""

    def __init__(self, encoder: nn.Module, pooling: str):
        super().__init__()
        self.encoder = encoder
        self.pooling = pooling

    def forward(self, input_ids, attention_mask, token_type_ids):
        hidden = self.encoder(input_ids, attention_mask, token_type_ids).last_hidden_state  # (B, T, H)
        if self.pooling == "cls":
            return hidden[:, 0]  # (B, H)
        return pool_tokens(hidden, attention_mask, self.pooling)  # (B, H)


class MaskedLMGraph(nn.Module):
    """Pre-training model -> MLM logits at every position (B, T, V)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.model(input_ids, attention_mask, token_type_ids).mlm_logits  # (B, T, V)


class HeadGraph(nn.Module):
    """A task model whose output is a tensor or a named tuple of tensors (QA) -> tuple."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids):
        out = self.model(input_ids, attention_mask, token_type_ids)
        return tuple(out) if isinstance(out, tuple) else out


@dataclass
class Exportable:
    """A model ready to trace: its graph, tokenizer and the names and axes of its outputs."""

    kind: str  # "embedding" | "fill-mask" | "task"
    graph: nn.Module
    tokenizer: Any
    config: Any
    source: Path
    task: Any = None
    pooling: str | None = None
    outputs: dict[str, list[str | int]] = field(default_factory=dict)  # name -> axes

    def __post_init__(self) -> None:
        self.graph.eval()  # a new wrapper module starts in training mode (dropout on)

    @property
    def output_names(self) -> list[str]:
        return list(self.outputs)

    @property
    def choice(self) -> bool:
        return self.task is not None and self.task.name == "choice"

    @property
    def input_axes(self) -> list[str]:
        return ["batch", "choices", "sequence"] if self.choice else ["batch", "sequence"]

    @property
    def pairs(self) -> bool:
        return (
            self.task is not None
            and self.task.name in ("pair", "qa", "choice")
            or (self.task is not None and bool(self.task.settings.get("text_pair_column")))
        )

    @property
    def max_length(self) -> int:
        if self.task is not None:
            return int(self.task.settings.get("max_seq_length") or self.config.max_position_embeddings)
        return int(self.config.max_position_embeddings)


def load_exportable(
    model_dir: str | Path, kind: str = ExportOptions.kind, pooling: str = ExportOptions.pooling
) -> Exportable:
    """What ``model_dir`` does (as :func:`bertkit.load` reads it), as a traceable graph."""
    if kind not in KINDS:
        raise BertkitError(f"kind: unknown value {kind!r} (choose from {', '.join(KINDS)})")
    if pooling not in POOLINGS:
        raise BertkitError(f"pooling: unknown value {pooling!r} (choose from {', '.join(POOLINGS)})")
    p = load(model_dir, device="cpu")
    if p.kind == "task":
        if kind != "auto":
            raise BertkitError(f"{p.path}: a fine-tuned task model exports its task head; --kind {kind} does not apply")
        model, task = p.task_model.cpu().eval(), p.task
        K = model.config.num_labels
        outputs = {
            "classification": {"logits": ["batch", K]},
            "pair": {"logits": ["batch", K]},
            "regression": {"logits": ["batch", 1]},
            "tagging": {"logits": ["batch", "sequence", K]},
            "qa": {"start_logits": ["batch", "sequence"], "end_logits": ["batch", "sequence"]},
            "choice": {"logits": ["batch", "choices"]},
        }[task.name]
        return Exportable("task", HeadGraph(model), p.tokenizer, model.config, p.path, task=task, outputs=outputs)
    if kind == "fill-mask" and p.mlm is None:
        raise BertkitError(f"{p.path}: --kind fill-mask needs a masked-LM head (cls.predictions.*), which it has not")
    if kind == "fill-mask" or (kind == "auto" and p.mlm is not None):
        V = p.config.vocab_size
        return Exportable(
            "fill-mask",
            MaskedLMGraph(p.mlm),
            p.tokenizer,
            p.config,
            p.path,
            outputs={"logits": ["batch", "sequence", V]},
        )
    return Exportable(
        "embedding",
        EmbeddingGraph(p.encoder, pooling),
        p.tokenizer,
        p.config,
        p.path,
        pooling=pooling,
        outputs={"embedding": ["batch", p.config.hidden_size]},
    )


# ------------------------------------------------------------------------------------- inputs
def _mask_one_word(text: str, mask_token: str) -> str:
    words = text.split()
    words[len(words) // 2] = mask_token
    return " ".join(words)


def parity_inputs(ex: Exportable, texts: list[str]) -> list[dict[str, np.ndarray]]:
    """Batches of real text for the parity check: each text alone (no padding) and all of them
    padded together; one long input near the length limit; pairs for pair tasks."""
    tok = ex.tokenizer
    if ex.kind == "fill-mask":
        mask_token = tok.convert_ids_to_tokens([tok.mask_id])[0]
        texts = [_mask_one_word(t, mask_token) for t in texts]
    max_len = min(ex.max_length, 256)
    long_text = " ".join(texts) * 8
    if ex.pairs:
        pairs = [(texts[i], texts[(i + 1) % len(texts)]) for i in range(len(texts))] + [(texts[0], long_text)]
        encs = [tok.encode(a, pair=b, max_length=max_len, truncation="longest_first") for a, b in pairs]
    else:
        encs = [tok.encode(t, max_length=max_len, truncation="longest_first") for t in [*texts, long_text]]
    rows = [(e.input_ids, e.attention_mask, e.token_type_ids) for e in encs]
    if ex.choice:  # (B, C, T): two choices per example, neighbours paired
        grouped = [[rows[i], rows[(i + 1) % len(rows)]] for i in range(len(rows))]
        return [_pad_choices(grouped[i : i + 1], tok.pad_id) for i in range(len(grouped))] + [
            _pad_choices(grouped, tok.pad_id)
        ]
    return [_pad(rows[i : i + 1], tok.pad_id) for i in range(len(rows))] + [_pad(rows, tok.pad_id)]


def _pad(rows: list[tuple[list[int], list[int], list[int]]], pad_id: int) -> dict[str, np.ndarray]:
    T = max(len(r[0]) for r in rows)
    out = {n: np.zeros((len(rows), T), dtype=np.int64) for n in INPUT_NAMES}
    out["input_ids"][:] = pad_id
    for i, (ids, mask, types) in enumerate(rows):
        out["input_ids"][i, : len(ids)] = ids
        out["attention_mask"][i, : len(ids)] = mask
        out["token_type_ids"][i, : len(ids)] = types
    return out


def _pad_choices(groups: list[list[tuple]], pad_id: int) -> dict[str, np.ndarray]:
    flat = _pad([r for g in groups for r in g], pad_id)
    C = len(groups[0])
    return {k: v.reshape(len(groups), C, -1) for k, v in flat.items()}


def _example_input(ex: Exportable) -> tuple[torch.Tensor, ...]:
    """The traced example: two rows, the second padded (see the module docstring)."""
    rows = [([101, 2000, 2001, 2002, 102], [1] * 5, [0] * 5), ([101, 2003, 102], [1] * 3, [0] * 3)]
    vocab = ex.config.vocab_size
    rows = [([i % vocab for i in ids], m, t) for ids, m, t in rows]
    batch = _pad_choices([rows], 0) if ex.choice else _pad(rows, 0)
    return tuple(torch.from_numpy(batch[n]) for n in INPUT_NAMES)


# ------------------------------------------------------------------------------------- running
@torch.no_grad()
def torch_outputs(ex: Exportable, batch: dict[str, np.ndarray]) -> list[np.ndarray]:
    out = ex.graph(*(torch.from_numpy(batch[n]) for n in INPUT_NAMES))
    outs = out if isinstance(out, tuple) else (out,)
    return [o.float().numpy() for o in outs]


def ort_outputs(session: Any, batch: dict[str, np.ndarray]) -> list[np.ndarray]:
    return session.run(None, {n: batch[n] for n in INPUT_NAMES})


def compare(ex: Exportable, session: Any, batches: list[dict[str, np.ndarray]]) -> dict[str, Any]:
    """Max |torch - onnxruntime| over every output of every batch (+ argmax agreement of logits)."""
    worst, agree, total = 0.0, 0, 0
    for batch in batches:
        for ref, got in zip(torch_outputs(ex, batch), ort_outputs(session, batch)):
            if not np.isfinite(got).all():
                return {"max_abs_diff": math.inf, "non_finite": True}
            worst = max(worst, float(np.abs(ref - got).max()))
            if ex.kind != "embedding" and ref.shape[-1] > 1:
                agree += int((ref.argmax(-1) == got.argmax(-1)).sum())
                total += ref[..., 0].size
    res: dict[str, Any] = {"max_abs_diff": worst, "batches": len(batches)}
    if total:
        res["argmax_agreement"] = agree / total
    return res


def _export_graph(ex: Exportable, path: Path) -> None:
    axes = ex.input_axes
    dynamic = {n: dict(enumerate(axes)) for n in INPUT_NAMES}
    for name, out_axes in ex.outputs.items():
        dynamic[name] = {i: a for i, a in enumerate(out_axes) if isinstance(a, str)}
    with warnings.catch_warnings(), contextlib.redirect_stdout(None):
        warnings.simplefilter("ignore")  # TracerWarnings about the branches the docstring explains
        torch.onnx.export(
            ex.graph,
            _example_input(ex),
            str(path),
            input_names=INPUT_NAMES,
            output_names=ex.output_names,
            opset_version=OPSET,
            dynamo=False,
            dynamic_axes=dynamic,
            do_constant_folding=True,
        )


def quantize_int8(src: Path, dst: Path) -> None:
    """onnxruntime dynamic quantization: int8 weights of MatMul / Gemm, activations quantized per call.

    Per-channel weight scales and ``reduce_range`` (7-bit weights, which the int8 kernels of
    CPUs without VNNI cannot saturate): on a MiniLM polarity fine-tune (400 dev sentences) the
    default settings lost 1.5 accuracy points, these 0.25 (docs/SERVING.md)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)  # its advice to run shape inference first, on the root logger
        try:
            quantize_dynamic(
                str(src),
                str(dst),
                weight_type=QuantType.QInt8,
                op_types_to_quantize=["MatMul", "Gemm"],
                per_channel=True,
                reduce_range=True,
            )
        finally:
            logging.disable(logging.NOTSET)


# ------------------------------------------------------------------------------------- export
def export_onnx(
    model_dir: str | Path,
    out_dir: str | Path,
    *,
    quantize: str | None = ExportOptions.quantize,
    eval_file: str | None = ExportOptions.eval_file,
    kind: str = ExportOptions.kind,
    pooling: str = ExportOptions.pooling,
    overwrite: bool = False,
    log: Any = None,
) -> dict[str, Any]:
    """Export ``model_dir`` to ``out_dir`` (see the module docstring); returns ``export.json``.

    ``out_dir`` passes the output guard (:mod:`bertkit.outputs`: absent, empty, or an earlier
    export replaced only with ``overwrite``; never an input); raises :class:`BertkitError` (and
    writes nothing) when onnxruntime's fp32 outputs differ from torch's by more than
    ``TOLERANCE`` on the parity texts."""
    onnx, ort = require_onnx()
    say = log or (lambda msg: None)
    if quantize is not None and quantize not in choices(Quantization):
        raise BertkitError(f"quantize: unknown value {quantize!r} (choose {', '.join(choices(Quantization))})")
    out = Path(out_dir)
    outputs.check_output_dir(out, "export", inputs=[model_dir, eval_file], overwrite=overwrite)
    if eval_file is not None and not Path(eval_file).is_file():
        raise BertkitError(f"{eval_file}: no such file")
    ex = load_exportable(model_dir, kind, pooling)
    texts = _eval_texts(ex, eval_file)[:8] + PARITY_TEXTS if eval_file else PARITY_TEXTS
    batches = parity_inputs(ex, texts)
    info: dict[str, Any] = {
        "format": "onnx",
        "kind": ex.kind,
        "task": ex.task.name if ex.task is not None else None,
        "labels": ex.task.labels if ex.task is not None else None,
        "pooling": ex.pooling,
        "normalized": False if ex.kind == "embedding" else None,
        "max_length": ex.max_length,
        "opset": OPSET,
        "files": {"fp32": MODEL_FILE},
        "inputs": [{"name": n, "dtype": "int64", "shape": ex.input_axes} for n in INPUT_NAMES],
        "outputs": [{"name": n, "dtype": "float32", "shape": axes} for n, axes in ex.outputs.items()],
        "source": str(ex.source),
        "versions": {
            "bertkit": __version__,
            "torch": torch.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": ort.__version__,
        },
    }
    with atomic_dir(out) as tmp:
        t0 = time.perf_counter()
        say(f"exporting {ex.kind}{' (' + ex.task.name + ')' if ex.task else ''} from {ex.source} (opset {OPSET})")
        _export_graph(ex, tmp / MODEL_FILE)
        onnx.checker.check_model(str(tmp / MODEL_FILE))
        info["export_seconds"] = round(time.perf_counter() - t0, 2)
        fp32 = compare(ex, ort_session(tmp / MODEL_FILE), batches)
        fp32.update(tolerance=TOLERANCE, texts=len(texts))
        info["parity"] = {"fp32": fp32}
        say(f"parity fp32: max |torch - onnxruntime| = {fp32['max_abs_diff']:.2e} over {len(batches)} batches")
        if not fp32["max_abs_diff"] <= TOLERANCE:
            raise BertkitError(
                f"{ex.source}: onnxruntime's outputs differ from torch's by {fp32['max_abs_diff']:.3g} "
                f"(> {TOLERANCE:g}) on the parity texts; nothing written to {out}"
            )
        if quantize == "int8":
            quantize_int8(tmp / MODEL_FILE, tmp / INT8_FILE)
            info["files"]["int8"] = INT8_FILE
            int8 = compare(ex, ort_session(tmp / INT8_FILE), batches)
            if int8.get("non_finite"):
                raise BertkitError(f"{ex.source}: the int8 model gives non-finite outputs; nothing written to {out}")
            info["parity"]["int8"] = int8
            say(f"parity int8: max |torch - onnxruntime int8| = {int8['max_abs_diff']:.2e} (not gated; see --eval)")
        if eval_file is not None:
            info["eval"] = evaluate_export(ex, tmp, eval_file, info["files"], say)
        ex.tokenizer.save(tmp)
        ex.config.save(tmp, architectures=[type(getattr(ex.graph, "model", ex.graph)).__name__])
        if ex.task is not None:
            task = {"task": ex.task.name, "settings": ex.task.settings, "labels": ex.task.labels}
            atomic_write_json(tmp / TASK_FILE, task)
        atomic_write_json(tmp / EXPORT_FILE, info)
        outputs.write_marker(tmp, "export")
    return info


# ------------------------------------------------------------------------------------- evaluation
def _eval_texts(ex: Exportable, path: str) -> list[str]:
    """Texts of a dev file for the parity check (first column of a task file / pair file)."""

    if ex.task is not None and ex.task.name in ("classification", "pair", "regression"):
        return [e.text for e in ex.task.read(path, labelled=False)]
    if ex.task is None:
        examples = read_text_examples(path, None, None, None, None, SCORE_COLUMNS, labelled=False, as_float=True)
        return [e.text for e in examples]
    return []


class OnnxModule(nn.Module):
    """An onnxruntime session behind a torch module's call signature, so bertkit's task code
    (batching, decoding, scoring) runs on it unchanged. Outputs are CPU float32 tensors."""

    def __init__(self, session: Any, config: Any):
        super().__init__()
        self.session = session
        self.config = config
        self._device = nn.Parameter(torch.empty(0), requires_grad=False)  # model_device() reads it

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        feed = {
            "input_ids": input_ids,
            "attention_mask": torch.ones_like(input_ids) if attention_mask is None else attention_mask,
            "token_type_ids": torch.zeros_like(input_ids) if token_type_ids is None else token_type_ids,
        }
        outs = self.session.run(None, {k: v.cpu().numpy().astype(np.int64) for k, v in feed.items()})
        tensors = tuple(torch.from_numpy(o) for o in outs)
        return tensors[0] if len(tensors) == 1 else tensors


def evaluate_export(ex: Exportable, directory: Path, eval_file: str, files: dict[str, str], say) -> dict[str, Any]:
    """The dev-file metrics of torch fp32 and of every exported file (task models: the task's
    metrics; encoders: Spearman / Pearson of cosine similarity on a scored pair file)."""
    if ex.kind == "fill-mask":
        raise BertkitError(
            "--eval scores task models and encoders (similarity pairs); a fill-mask export has no dev metric here"
        )
    runners: dict[str, nn.Module] = {"torch_fp32": ex.graph.model if ex.kind == "task" else ex.graph}
    for name, fname in files.items():
        runners[f"onnx_{name}"] = OnnxModule(ort_session(directory / fname), ex.config)
    res: dict[str, Any] = {"file": str(eval_file)}
    for name, module in runners.items():
        res[name] = (
            _task_metrics(ex, module, eval_file) if ex.kind == "task" else _similarity_metrics(ex, module, eval_file)
        )
        say(f"eval {name}: " + ", ".join(f"{k} {v:.4f}" for k, v in res[name].items() if isinstance(v, float)))
    main = _main_metric(res["torch_fp32"])
    res["metric"] = main
    for name in runners:
        if name != "torch_fp32":
            res[f"{name}_change_points"] = round(100 * (res[name][main] - res["torch_fp32"][main]), 3)
    return res


def _main_metric(metrics: dict[str, Any]) -> str:
    for k in ("accuracy", "f1", "exact_match", "spearman", "pearson"):
        if k in metrics:
            return k
    return next(k for k, v in metrics.items() if isinstance(v, float))


def _task_metrics(ex: Exportable, module: nn.Module, path: str) -> dict[str, Any]:
    task = ex.task
    examples = task.read(path, labelled=True)
    label2id = {lab: i for i, lab in enumerate(task.labels)} if task.labels else None
    task.check_labels(path, examples, label2id or {})
    feats = task.featurize(examples, ex.tokenizer, None, training=False)
    id2label = dict(enumerate(task.labels)) if task.labels else None
    preds = task.predict(module, feats, examples, id2label, 32, ex.tokenizer.pad_id)
    return task.score(examples, preds)


@torch.no_grad()
def _similarity_metrics(ex: Exportable, module: nn.Module, path: str) -> dict[str, Any]:

    examples = read_text_examples(path, True, None, None, None, SCORE_COLUMNS, labelled=True, as_float=True)
    if not all(e.text_pair for e in examples):
        raise BertkitError(f"{path}: --eval for an encoder needs a scored pair file (text, text_pair, score)")
    unique = sorted({e.text for e in examples} | {e.text_pair for e in examples})
    index = {t: i for i, t in enumerate(unique)}
    vecs = np.zeros((len(unique), ex.config.hidden_size), dtype=np.float32)
    encs = ex.tokenizer.encode_batch(unique, max_length=min(ex.max_length, 256))
    order = np.argsort([len(e.input_ids) for e in encs], kind="stable")
    for s in range(0, len(order), 64):
        idx = order[s : s + 64]
        b = _pad(
            [(encs[i].input_ids, encs[i].attention_mask, encs[i].token_type_ids) for i in idx], ex.tokenizer.pad_id
        )
        out = module(*(torch.from_numpy(b[n]) for n in INPUT_NAMES))
        vecs[idx] = out.float().numpy()
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True).clip(min=1e-12)
    cos = [float(vecs[index[e.text]] @ vecs[index[e.text_pair]]) for e in examples]
    gold = [e.label for e in examples]
    return {"spearman": metrics.spearman(cos, gold), "pearson": metrics.pearson(cos, gold), "pairs": len(examples)}


def read_export(directory: str | Path) -> dict[str, Any]:
    """``export.json`` of an export directory (one-line error when it is not one)."""
    d = Path(directory)
    if not (d / EXPORT_FILE).is_file():
        raise BertkitError(f"{d}: not a bertkit ONNX export (no {EXPORT_FILE}); make one with bertkit export")
    return read_json(d / EXPORT_FILE)


# ------------------------------------------------------------------------------------- serving
def load_onnx(directory: str | Path, *, int8: bool = False, max_tokens: int | None = None, threads: int | None = None):
    """A :class:`bertkit.inference.Predictor` whose model runs in onnxruntime: an export
    directory's ``model.onnx`` (or ``model.int8.onnx`` with ``int8``). It can do what the export
    does: embed / similarity (the exported pooling), fill-mask, or the task's predict."""

    d = Path(directory)
    info = read_export(d)
    fname = info["files"].get("int8" if int8 else "fp32")
    if fname is None:
        raise BertkitError(f"{d}: no int8 model in this export (make one with bertkit export --quantize int8)")
    cfg = BertConfig.from_pretrained(d)
    module = OnnxModule(ort_session(d / fname, threads), cfg)
    tok = Tokenizer.from_pretrained(d)
    kw = dict(max_tokens=max_tokens or DEFAULT_MAX_TOKENS, batch_size=DEFAULT_BATCH_SIZE)
    if info["kind"] == "task":
        saved = read_json(d / TASK_FILE)
        task = get_task(saved["task"], **saved["settings"])
        task.labels = saved.get("labels")
        return OnnxPredictor(d, info, module, tok, None, task=task, task_model=module, **kw)
    if info["kind"] == "fill-mask":
        return OnnxPredictor(d, info, module, tok, None, mlm=module, **kw)
    return OnnxPredictor(d, info, module, tok, None, **kw)


class OnnxPredictor(Predictor):
    """A :class:`~bertkit.inference.Predictor` on an onnxruntime session (see :func:`load_onnx`):
    the export's graph replaces the torch model; tokenization, batching and decoding are the
    Predictor's own."""

    def __init__(self, path, info, module, tok, max_length, **kw):
        super().__init__(path, module, tok, torch.device("cpu"), "fp32", max_length, **kw)
        self.export_info = info

    @property
    def capabilities(self) -> tuple[str, ...]:
        kind = self.export_info["kind"]
        if kind == "embedding":
            return ("embed", "similarity")
        if kind == "fill-mask":
            return ("fill_mask",)
        return ("predict", "predict_file")

    def _pool(self, b, pooling, normalize):
        if self.export_info["kind"] != "embedding":
            raise BertkitError(f"{self.path}: this ONNX export is a {self.export_info['kind']} model, not an encoder")
        if pooling != self.export_info["pooling"]:
            raise BertkitError(
                f"{self.path}: this export pools with {self.export_info['pooling']!r} in its graph, not {pooling!r}"
            )
        pooled = self.encoder(b["input_ids"], b["attention_mask"], b["token_type_ids"])  # (B, H)
        return torch.nn.functional.normalize(pooled, p=2, dim=1) if normalize else pooled

    def _mask_logits(self, b, rows):
        logits = self.mlm(b["input_ids"], b["attention_mask"], b["token_type_ids"])  # (B, T, V)
        idx = rows.unsqueeze(-1).expand(-1, -1, logits.shape[-1])  # (B, R, V)
        return torch.gather(logits, 1, idx)  # (B, R, V)
