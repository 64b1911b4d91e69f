"""Use a BERT: sentence embeddings, fill-mask, task predictions and similarity, from one loader.

::

    import bertkit

    m = bertkit.load("runs/sst2")          # any model directory bertkit knows (see below)
    m.capabilities                         # e.g. ("embed", "similarity", "predict")
    m.embed(["a text", "another text"], pooling="mean", normalize=True)  # float32 (2, H)
    m.similarity(["a text"], ["a text", "something else"])              # cosine, (1, 2)
    m.predict(["a fine film ."])           # classification: [{"label", "probability", "probabilities"}]

    lm = bertkit.load("runs/pretrain/checkpoint-1000")                   # has an MLM head
    lm.fill_mask(["paris is the [MASK] of france ."], top_k=5)
    # [{"text": ..., "masks": [[{"token_id", "token", "score"}, ...]], "filled": "paris is the capital ..."}]

``load(path, *, task=None, device="auto", precision="fp32", max_length=None, batch_size=256,
max_tokens=16384) -> Predictor`` opens

* a plain encoder directory (``config.json`` + weights + ``vocab.txt``: bertkit's, a
  transformers ``BertModel`` directory, ...): ``embed``, ``similarity``;
* a pre-training checkpoint (MLM head ``cls.predictions.*``; a run directory means its newest
  ``checkpoint-STEP/``; an original Google TensorFlow checkpoint directory, read without
  TensorFlow): ``embed``, ``similarity``, ``fill_mask``;
* a fine-tuned task directory (``bertkit finetune`` output with ``task.json``, or a transformers
  ``BertFor{SequenceClassification,TokenClassification,QuestionAnswering,MultipleChoice}``
  directory, or any head checkpoint with ``task=NAME``): ``embed``, ``similarity``, ``predict``
  (and ``predict_file``);
* a Hugging Face Hub name (``google-bert/bert-base-uncased``) in the local Hugging Face cache
  (docs/INTEROP.md).

A method the model cannot do raises one :class:`~bertkit.errors.BertkitError` saying why.

Methods (every one returns results in input order):

* ``embed(texts, pooling="mean"|"cls"|"max", normalize=False, batch_size=None, max_length=None,
  progress=False) -> np.ndarray`` float32 (N, H). ``mean`` averages the last hidden states
  over real tokens ([CLS] and [SEP] included, padding excluded: sentence-transformers' mean
  pooling), ``cls`` takes [CLS]'s last hidden state (no pooler), ``max`` the element-wise max.
* ``iter_embed(texts: Iterable[str], chunk_size=8192, ...) -> Iterator[(texts, np.ndarray)]``:
  the same for inputs larger than memory, one pair per chunk of texts (memory bounded by the chunk).
* ``fill_mask(texts, top_k=5) -> list[dict]``: per text ``{"text", "masks", "filled"}``;
  ``masks[k]`` = the top-k ``{"token_id", "token", "score"}`` (softmax probability) for the
  k-th ``[MASK]``; ``filled`` = the text with every ``[MASK]`` replaced by its top token (a
  ``##`` piece joins the character before it).
* ``predict(inputs) -> list[dict]``, by task:

  - classification / pair: input a text or a ``(text, text_pair)``;
    ``{"label", "probability", "probabilities": {label: p}}``;
  - regression: same inputs; ``{"score"}``;
  - tagging: input a text; ``{"words": [{"word", "label", "start", "end"}], "entities":
    [{"entity_group", "score", "word", "start", "end"}]}``: words are the tokenizer's words
    (split at spaces and punctuation) labelled at their first piece (as training); entities
    follow transformers' token-classification pipeline with ``aggregation_strategy="simple"``
    (every piece's own argmax, adjacent pieces of one type merged unless a ``B-`` starts a new
    one, mean score, ``O`` dropped); ``start`` / ``end`` are character offsets into the text;
  - qa: input ``(question, context)`` or ``{"question", "context"}``; ``{"answer", "start",
    "end", "score", "null_score_diff"}``: ``answer`` "" (``start`` / ``end`` None) when a
    SQuAD v2 model's tuned threshold says no answer; ``score`` = start x end probability in
    its window (softmax over context tokens and [CLS]);
  - choice: input ``{"context", "start" (optional), "endings": [...]}`` or ``(context,
    endings)``; ``{"choice", "probabilities"}``.

* ``predict_file(data, out, ...) -> int``: ``bertkit predict``: every example of a task file,
  one JSON line each (or the official SQuAD ``.json``), written atomically.
* ``similarity(a, b, pooling="mean") -> np.ndarray``: cosine of the embeddings, shape
  ``(len(a), len(b))`` (a string counts as a list of one).

Speed: texts are tokenized in one batch, sorted by length and cut into batches of at most
``batch_size`` texts and ``max_tokens`` tokens counted with padding (no batch is padded beyond
its longest text, and long texts get smaller batches); the forward runs under
``torch.inference_mode``; rows are put back in input order. Batching does not change results
beyond float rounding (fp32: within 1e-5 of one text at a time, tested). ``precision="bf16"``
runs the model under bf16 autocast (fast where the CPU has bf16 matrix instructions, else
slower); ``"auto"`` picks bf16 only there (:func:`native_bf16`); see docs/INFERENCE.md for the
measured deviation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from bertkit import runtime
from bertkit.checkpoint import config_file_name, tensor_names
from bertkit.config import BertConfig
from bertkit.errors import BertkitError, quoted
from bertkit.fileio import read_json
from bertkit.heads import BertForPreTraining
from bertkit.model import BertModel
from bertkit.settings import (
    EmbedOptions,
    FillMaskOptions,
    InferenceOptions,
    InferencePrecision,
    Pooling,
    choices,
)
from bertkit.tasks.base import Features, build_pair
from bertkit.tasks.batching import collate, run_model, token_budget_batches
from bertkit.tasks.checkpoints import TASK_FILE, load_task_model, resolve_init, write_predictions
from bertkit.tasks.results import input_example, qa_result, tagging_result
from bertkit.tokenization import Tokenizer

POOLINGS = choices(Pooling)
PRECISIONS = choices(InferencePrecision)
DEFAULT_BATCH_SIZE = InferenceOptions.batch_size
DEFAULT_MAX_TOKENS = InferenceOptions.max_tokens
# A head model class in config.json "architectures" -> the task family that reads it.
ARCHITECTURE_TASKS = {
    "BertForSequenceClassification": "classification",
    "BertForTokenClassification": "tagging",
    "BertForQuestionAnswering": "qa",
    "BertForMultipleChoice": "choice",
}
_MLM_PREFIX = "cls.predictions.transform."


def native_bf16(device: torch.device) -> bool:
    """Does ``device`` multiply bf16 matrices natively (CUDA with bf16 support; a CPU with
    AVX512-BF16 or AMX-BF16)? Without it, bf16 autocast is emulated and slower than fp32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, device: torch.device) -> str:
    """``fp32`` / ``bf16`` as given; ``auto`` -> bf16 where :func:`native_bf16`, else fp32."""
    if precision not in PRECISIONS:
        raise BertkitError(f"precision: unknown value {precision!r} (choose from {', '.join(PRECISIONS)})")
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


def _architecture_task(directory: Path, cfg: Any) -> str | None:
    """The task family of a head checkpoint from config.json's ``architectures`` (transformers
    and bertkit write it), or None."""

    for arch in read_json(directory / config_file_name(directory)).get("architectures") or []:
        if arch in ARCHITECTURE_TASKS:
            name = ARCHITECTURE_TASKS[arch]
            return "regression" if name == "classification" and cfg.num_labels == 1 else name
    return None


def load(
    path: str | Path,
    *,
    task: str | None = None,
    device: str = InferenceOptions.device,
    precision: str = InferenceOptions.precision,
    max_length: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    columns: dict | None = None,
) -> Predictor:
    """Open the model directory ``path`` for inference (see the module docstring).

    ``task`` names the task family of a head checkpoint without ``task.json``; ``max_length``
    caps tokens per input (default: a task model's training length, else the model's
    ``max_position_embeddings``); ``columns`` (``{"text", "text_pair", "label", "header"}``)
    overrides a task's saved column names for :meth:`Predictor.predict_file`."""

    directory = Path(resolve_init(str(path)))
    cfg = BertConfig.from_pretrained(directory)
    dev = runtime.choose_device(device)
    task_name = task
    if task_name is None and not (directory / TASK_FILE).is_file():
        task_name = _architecture_task(directory, cfg)
    if task_name is not None or (directory / TASK_FILE).is_file():
        task_obj, model, tok = load_task_model(str(directory), task_name, columns, max_seq_length=max_length)
        model.to(dev)
        return Predictor(
            directory, model.bert, tok, dev, precision, max_length, batch_size, max_tokens, task_obj, model
        )

    names = {n.removeprefix("bert.") for n in tensor_names(directory)}
    has_mlm = any(n.startswith(_MLM_PREFIX) for n in names)
    model = (BertForPreTraining if has_mlm else BertModel).from_pretrained(directory).to(dev)
    tok = Tokenizer.from_pretrained(directory)
    encoder = model.bert
    return Predictor(
        directory, encoder, tok, dev, precision, max_length, batch_size, max_tokens, mlm=model if has_mlm else None
    )


def pool_tokens(hidden: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """``mean`` or ``max`` of ``hidden`` (B, T, H) over the positions where ``mask`` (B, T) is 1:
    (B, H). Also the pooling inside exported ONNX graphs (bertkit.export)."""
    m = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    if pooling == "mean":
        return (hidden * m).sum(1) / m.sum(1).clamp_min(1e-9)  # (B, H)
    return hidden.masked_fill(m == 0, float("-inf")).amax(1)  # (B, H)


class Predictor:
    """A loaded model and the things it can do (see the module docstring). Build with :func:`load`."""

    def __init__(
        self,
        path: Path,
        encoder: torch.nn.Module,
        tokenizer: Any,
        device: torch.device,
        precision: str,
        max_length: int | None,
        batch_size: int,
        max_tokens: int,
        task: Any = None,
        task_model: torch.nn.Module | None = None,
        mlm: torch.nn.Module | None = None,
    ) -> None:
        if batch_size < 1 or max_tokens < 1:
            raise BertkitError(f"batch_size and max_tokens must be >= 1 (got {batch_size}, {max_tokens})")
        self.path = path
        self.encoder = encoder.eval()
        self.tokenizer = tokenizer
        self.config = encoder.config
        self.device = device
        self.precision = resolve_precision(precision, device)
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self.task = task
        self.task_model = task_model
        self.mlm = mlm
        limit = self.config.max_position_embeddings
        default = task.settings["max_seq_length"] if task is not None else limit
        self.max_length = self._check_length(max_length) if max_length else min(default, limit)

    # -- what it is -----------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        """``"task"`` (fine-tuned head), ``"pretraining"`` (MLM head) or ``"encoder"``."""
        return "task" if self.task is not None else "pretraining" if self.mlm is not None else "encoder"

    @property
    def task_name(self) -> str | None:
        return self.task.name if self.task is not None else None

    @property
    def labels(self) -> list[str] | None:
        return self.task.labels if self.task is not None else None

    @property
    def capabilities(self) -> tuple[str, ...]:
        caps = ["embed", "similarity"]
        if self.mlm is not None:
            caps.append("fill_mask")
        if self.task is not None:
            caps += ["predict", "predict_file"]
        return tuple(caps)

    def __repr__(self) -> str:
        what = self.task_name or self.kind
        return f"Predictor({str(self.path)!r}, {what}, {self.precision}, can: {', '.join(self.capabilities)})"

    def _check_length(self, n: int) -> int:
        limit = self.config.max_position_embeddings
        if not 2 <= n <= limit:
            raise BertkitError(f"{self.path}: max_length {n} must be between 2 and max_position_embeddings {limit}")
        return n

    def _autocast(self):
        return runtime.autocast(self.precision, self.device)

    # -- batching -------------------------------------------------------------------------------
    def _encode_texts(self, texts: Sequence[str], max_length: int) -> tuple[list[dict], int]:
        """``[CLS] text [SEP]`` feature items (truncated to ``max_length``) and the number cut."""
        return self._encode_ids(self.tokenizer.tokenize_ids_batch(list(texts)), max_length)

    def _encode_ids(self, token_ids: Sequence[Sequence[int]], max_length: int) -> tuple[list[dict], int]:
        """``[CLS] ids [SEP]`` feature items (truncated to ``max_length``) and the number cut."""
        tok = self.tokenizer
        items, truncated = [], 0
        for ids in token_ids:
            seq, types, cut = build_pair(ids, None, max_length, tok.cls_id, tok.sep_id)
            truncated += cut
            items.append({"input_ids": seq, "token_type_ids": types})
        return items, truncated

    def _batches(
        self, items: Sequence[dict], batch_size: int | None, on_batch: Callable[[int], None] | None = None
    ) -> Iterator[tuple[np.ndarray, dict[str, torch.Tensor]]]:
        """``(indices, batch on the device)`` in token-budget order, under inference mode."""
        lengths = [len(it["input_ids"]) for it in items]
        for idx in token_budget_batches(lengths, self.max_tokens, batch_size or self.batch_size):
            batch = collate([items[i] for i in idx], self.tokenizer.pad_id)
            yield idx, {k: v.to(self.device) for k, v in batch.items()}
            if on_batch is not None:
                on_batch(len(idx))

    # -- embeddings -----------------------------------------------------------------------------
    def embed(
        self,
        texts: Sequence[str],
        pooling: str = EmbedOptions.pooling,
        normalize: bool = EmbedOptions.normalize,
        batch_size: int | None = None,
        max_length: int | None = None,
        progress: bool = False,
    ) -> np.ndarray:
        """Sentence embeddings, float32 ``(len(texts), H)``, rows in input order."""
        texts = _as_texts(texts)
        with _texts_bar(progress, len(texts), "embed") as bar:
            return self._embed(texts, pooling, normalize, batch_size, max_length, bar.update)

    def iter_embed(
        self,
        texts: Iterable[str],
        pooling: str = EmbedOptions.pooling,
        normalize: bool = EmbedOptions.normalize,
        batch_size: int | None = None,
        max_length: int | None = None,
        chunk_size: int = EmbedOptions.chunk_size,
        progress: bool = False,
        total: int | None = None,
    ) -> Iterator[tuple[list[str], np.ndarray]]:
        """:meth:`embed` over an iterable of any size, streamed: ``(texts, vectors)`` per
        ``chunk_size`` texts, in order (each chunk is sorted and batched on its own, so memory
        stays bounded by the chunk). ``total`` (if known) sizes the progress bar."""
        if chunk_size < 1:
            raise BertkitError(f"chunk_size must be >= 1 (got {chunk_size})")
        with _texts_bar(progress, total, "embed") as bar:
            chunk: list[str] = []
            for text in texts:
                chunk.append(text)
                if len(chunk) == chunk_size:
                    yield chunk, self._embed(_as_texts(chunk), pooling, normalize, batch_size, max_length, bar.update)
                    chunk = []
            if chunk:
                yield chunk, self._embed(_as_texts(chunk), pooling, normalize, batch_size, max_length, bar.update)

    def embed_token_ids(
        self,
        token_ids: Sequence[Sequence[int]],
        pooling: str = EmbedOptions.pooling,
        normalize: bool = EmbedOptions.normalize,
        batch_size: int | None = None,
        max_length: int | None = None,
    ) -> np.ndarray:
        """:meth:`embed` of texts already split into WordPiece ids without [CLS] / [SEP]
        (``tokenizer.tokenize_ids_batch(texts)``): the same rows, for a caller that tokenised
        first to count tokens (``bertkit serve`` checks its limits that way)."""
        vocab = self.config.vocab_size
        for i, ids in enumerate(token_ids):
            if len(ids) and not (0 <= min(ids) and max(ids) < vocab):
                raise BertkitError(f"input {i + 1}: token ids must be in 0..{vocab - 1}")
        return self._embed_ids(token_ids, pooling, normalize, batch_size, max_length, None)

    def _embed(self, texts, pooling, normalize, batch_size, max_length, on_batch) -> np.ndarray:
        ids = self.tokenizer.tokenize_ids_batch(list(texts))
        return self._embed_ids(ids, pooling, normalize, batch_size, max_length, on_batch)

    def _embed_ids(self, token_ids, pooling, normalize, batch_size, max_length, on_batch) -> np.ndarray:
        if pooling not in POOLINGS:
            raise BertkitError(f"pooling: unknown value {pooling!r} (choose from {', '.join(POOLINGS)})")
        max_length = self._check_length(max_length or self.max_length)
        items, truncated = self._encode_ids(token_ids, max_length)
        if truncated:
            runtime.log(f"embed: {truncated} of {len(token_ids)} texts truncated to {max_length} tokens")
        out = np.empty((len(token_ids), self.config.hidden_size), dtype=np.float32)
        with torch.inference_mode(), self._autocast():
            for idx, b in self._batches(items, batch_size, on_batch):
                out[idx] = self._pool(b, pooling, normalize).cpu().numpy()
        _check_finite(out, "embedding")
        return out

    def _pool(self, b: dict[str, torch.Tensor], pooling: str, normalize: bool) -> torch.Tensor:
        """Pooled, optionally L2-normalised float32 embeddings of one batch: (B, H)."""
        ids, mask, types = b["input_ids"], b["attention_mask"], b["token_type_ids"]
        if pooling == "cls":  # the last layer runs for the [CLS] row only
            rows = ids.new_zeros(ids.shape[0], 1)  # (B, 1)
            pooled = self.encoder.hidden_states_at(ids, mask, types, rows)[:, 0].float()  # (B, H)
        else:
            hidden = self.encoder(ids, mask, types).last_hidden_state.float()  # (B, T, H)
            pooled = pool_tokens(hidden, mask, pooling)  # (B, H)
        return F.normalize(pooled, p=2, dim=1) if normalize else pooled

    def similarity(
        self,
        a: str | Sequence[str],
        b: str | Sequence[str],
        pooling: str = EmbedOptions.pooling,
        batch_size: int | None = None,
    ) -> np.ndarray:
        """Cosine similarity of every text of ``a`` with every text of ``b``: ``(len(a), len(b))``."""
        a = [a] if isinstance(a, str) else list(a)
        b = [b] if isinstance(b, str) else list(b)
        vecs = self.embed(a + b, pooling=pooling, normalize=True, batch_size=batch_size)
        return vecs[: len(a)] @ vecs[len(a) :].T

    # -- fill-mask ------------------------------------------------------------------------------
    def fill_mask(
        self,
        texts: Sequence[str],
        top_k: int = FillMaskOptions.top_k,
        batch_size: int | None = None,
        max_length: int | None = None,
        progress: bool = False,
    ) -> list[dict]:
        """For every ``[MASK]`` of every text, the ``top_k`` tokens and their probabilities."""
        if self.mlm is None:
            raise BertkitError(
                f"{self.path}: fill-mask needs a masked-LM head (cls.predictions.*), which this "
                f"{self.kind} checkpoint does not have; use a pre-training checkpoint"
            )
        texts = _as_texts(texts)
        vocab_size = self.config.vocab_size
        if not 1 <= top_k <= vocab_size:
            raise BertkitError(f"top_k must be between 1 and the vocabulary size {vocab_size} (got {top_k})")
        tok = self.tokenizer
        mask_token = tok.special_tokens["mask_token"]
        max_length = self._check_length(max_length or self.max_length)
        items, _ = self._encode_texts(texts, max_length)
        positions = []
        for i, (text, it) in enumerate(zip(texts, items)):
            pos = [j for j, t in enumerate(it["input_ids"]) if t == tok.mask_id]
            n_literal = text.count(mask_token)
            if not pos:
                raise BertkitError(f"fill-mask: input {i + 1} has no {mask_token} token: {quoted(text)}")
            if len(pos) < n_literal:
                raise BertkitError(
                    f"fill-mask: input {i + 1}: {n_literal - len(pos)} of its {n_literal} {mask_token} tokens lie "
                    f"beyond max_length {max_length}: {quoted(text)}"
                )
            positions.append(pos)
        results: list[dict | None] = [None] * len(texts)
        with _texts_bar(progress, len(texts), "fill-mask") as bar, torch.inference_mode(), self._autocast():
            for idx, b in self._batches(items, batch_size, bar.update):
                R = max(len(positions[i]) for i in idx)
                rows = torch.zeros((len(idx), R), dtype=torch.long)  # (B, R), 0 = unused
                for j, i in enumerate(idx):
                    rows[j, : len(positions[i])] = torch.tensor(positions[i])
                probs = self._mask_logits(b, rows.to(self.device)).float().softmax(-1)  # (B, R, V)
                top_p, top_i = probs.topk(top_k, dim=-1)  # (B, R, k)
                top_p, top_i = top_p.cpu().numpy(), top_i.cpu().numpy()
                for j, i in enumerate(idx):
                    masks = [
                        [
                            {"token_id": int(t), "token": tok.convert_ids_to_tokens([int(t)])[0], "score": float(p)}
                            for t, p in zip(top_i[j, r], top_p[j, r])
                        ]
                        for r in range(len(positions[i]))
                    ]
                    results[i] = {"text": texts[i], "masks": masks, "filled": _fill(texts[i], mask_token, masks)}
        return results  # type: ignore[return-value]

    def _mask_logits(self, b: dict[str, torch.Tensor], rows: torch.Tensor) -> torch.Tensor:
        """MLM logits of one batch at ``rows`` (B, R): (B, R, V). The encoder's last layer runs
        only for those rows; an ONNX predictor (bertkit.export) overrides this."""
        h = self.encoder.hidden_states_at(b["input_ids"], b["attention_mask"], b["token_type_ids"], rows)  # (B,R,H)
        decoder = self.mlm.bert.embeddings.word_embeddings.weight  # (V, H), tied
        return self.mlm.cls.predictions(h, decoder)  # (B, R, V)

    # -- task predictions -----------------------------------------------------------------------
    def _require_task(self, what: str) -> Any:
        if self.task is None:
            raise BertkitError(
                f"{self.path}: {what} needs a fine-tuned task model (task.json or a BertFor* head), "
                f"and this is a {self.kind} checkpoint; fine-tune it first (bertkit finetune)"
            )
        return self.task

    def _run_task(self, features, examples, batch_size: int | None, progress: bool) -> list:
        task = self.task
        id2label = dict(enumerate(task.labels)) if task.labels else None
        with self._autocast():
            return task.predict(
                self.task_model,
                features,
                examples,
                id2label,
                batch_size or self.batch_size,
                self.tokenizer.pad_id,
                progress=progress,
                max_tokens=self.max_tokens,
            )

    def predict(self, inputs: Sequence[Any], batch_size: int | None = None, progress: bool = False) -> list[dict]:
        """Task predictions, one dict per input (see the module docstring for each task's shape)."""
        task = self._require_task("predict")
        if isinstance(inputs, str | dict):
            raise BertkitError("predict: pass a list of inputs (one text, pair, ... per element)")
        inputs = list(inputs)
        if task.name == "tagging":
            return self._predict_tagging(inputs, batch_size, progress)
        examples = [input_example(task.name, x, i + 1) for i, x in enumerate(inputs)]
        features = task.featurize(examples, self.tokenizer, None, training=False)
        if features.n_truncated:
            runtime.log(f"predict: {features.n_truncated} of {len(examples)} inputs truncated")
        preds = self._run_task(features, examples, batch_size, progress)
        if task.name == "qa":
            return [qa_result(task, p) for p in preds]
        return preds

    def _predict_tagging(self, texts: list, batch_size: int | None, progress: bool) -> list[dict]:

        texts = _as_texts(texts)
        encs = self.tokenizer.encode_batch(texts, max_length=self.max_length)
        items = [{"input_ids": e.input_ids, "token_type_ids": e.token_type_ids} for e in encs]
        features = Features(items, list(range(len(texts))), n_examples=len(texts))

        with self._autocast():
            logits = run_model(
                self.task_model,
                features,
                batch_size or self.batch_size,
                self.tokenizer.pad_id,
                token_level=True,
                progress=progress,
                max_tokens=self.max_tokens,
            )  # (T, K) each
        id2label = dict(enumerate(self.task.labels))
        unk = self.tokenizer.unk_id
        return [tagging_result(text, enc, lg, id2label, unk) for text, enc, lg in zip(texts, encs, logits)]

    def predict_file(
        self,
        data: str,
        out: str,
        batch_size: int | None = None,
        progress: bool = True,
        labelled: bool = False,
    ) -> int:
        """``bertkit predict``: predictions for every example of ``data`` (a task file, labels
        optional and copied as ``gold``) written to ``out`` (JSON lines, or the task's official
        ``.json`` format); returns the number of predictions."""

        task = self._require_task("predict_file")
        out_path = Path(out)
        if out_path.suffix == ".json" and task.official_format is None:
            raise BertkitError(
                f"{out_path}: .json predictions are for tasks with an official format (qa); "
                f"task {task.name} writes JSON lines: name the file .jsonl"
            )
        examples, preds = self.predict_examples(data, batch_size, progress, labelled)
        write_predictions(out_path, task, examples, preds)
        return len(preds)

    def predict_examples(
        self, data: str, batch_size: int | None = None, progress: bool = True, labelled: bool = False
    ) -> tuple[list, list]:
        """``(examples, predictions)`` of a task file, read with the task's saved settings."""
        task = self._require_task("predict")
        examples = task.read(data, labelled=labelled)
        if labelled:
            task.check_labels(data, examples, {lab: i for i, lab in enumerate(task.labels or [])})
        features = task.featurize(examples, self.tokenizer, None, training=False)
        if features.n_truncated:
            runtime.log(
                f"{data}: {features.n_truncated} of {features.n_examples} examples truncated "
                f"(max_seq_length {task.settings['max_seq_length']})"
            )
        return examples, self._run_task(features, examples, batch_size, progress)


# ---------------------------------------------------------------------------------------- helpers


def _as_texts(texts: Any) -> list[str]:
    if isinstance(texts, str):
        raise BertkitError("pass a list of texts, not one string (wrap it: [text])")
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise BertkitError(f"input {i + 1}: expected a text (str), got {type(t).__name__}")
    return texts


def _check_finite(values: np.ndarray, what: str) -> None:
    """Refuse NaN / infinity in outputs (the model overflows on an input), naming the input."""
    bad = ~np.isfinite(values.reshape(len(values), -1)).all(axis=1)
    if bad.any():
        raise BertkitError(
            f"the model's {what} is not finite (NaN or infinity) for input {int(np.argmax(bad)) + 1}: its "
            "activations overflow on that input; refusing to return non-finite outputs"
        )


class _texts_bar:
    """A tqdm bar counting texts (rate in texts/s), or a no-op; a context manager."""

    def __init__(self, enabled: bool, total: int | None, desc: str) -> None:
        self.bar = None
        if enabled:
            self.bar = tqdm(total=total, desc=desc, unit="text", unit_scale=True, smoothing=0.1)

    def update(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def __enter__(self) -> _texts_bar:
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()


def _fill(text: str, mask_token: str, masks: list[list[dict]]) -> str:
    """``text`` with its k-th mask token replaced by the k-th mask's top token."""
    parts = text.split(mask_token)
    out = parts[0]
    for part, cands in zip(parts[1:], masks):
        token = cands[0]["token"]
        if token.startswith("##"):
            out = out.rstrip(" ") + token[2:]
        else:
            out += token
        out += part
    return out


__all__ = [
    "load",
    "Predictor",
    "native_bf16",
    "resolve_precision",
    "POOLINGS",
    "PRECISIONS",
]
