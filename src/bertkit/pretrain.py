"""Pre-training: MLM (+ NSP) on prepared data, through the one training loop.

::

    from bertkit.pretrain import PretrainConfig, pretrain
    cfg = PretrainConfig(data="data/prepared", out="runs/mini", model="mini", tokenizer="vocab/",
                         max_steps=10000, batch_size=32, lr=1e-4, warmup_steps=1000)
    summary = pretrain(cfg)                    # pretrain(cfg, resume=True) to continue

``bertkit pretrain --data DIR --out DIR [--config FILE] [--flag value ...] [key=value ...]
[--resume]`` is the same thing from the shell: :class:`PretrainConfig` holds every key with its
default (the training loop's keys are :class:`~bertkit.training.config.TrainConfig`'s), a JSON
config file, then ``key=value`` overrides and flags (``--max-steps 10`` is ``max_steps=10``) are
applied on top, in that order.

The model is a preset (``tiny`` ... ``large``, vocabulary size taken from the data), a
``config.json`` (file or checkpoint directory), or initialised from a checkpoint (``init``: the
weights and config of e.g. a phase-1 run, continued at a longer sequence length). The loss is
MLM cross-entropy over the masked positions plus NSP cross-entropy when the data has NSP labels
(MLM only otherwise). Every ``eval_every`` steps the validation split is scored: MLM loss and
accuracy, NSP loss and accuracy.
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bertkit import outputs, runtime, settings
from bertkit.checkpoint import with_overrides
from bertkit.config import PRESETS, BertConfig
from bertkit.errors import BertkitError
from bertkit.fileio import atomic_write_json, iter_jsonl, read_json
from bertkit.heads import BertForPreTraining, pretraining_loss
from bertkit.pretraining.format import MANIFEST, check_vocab
from bertkit.pretraining.loader import PretrainingLoader
from bertkit.tokenization import Tokenizer
from bertkit.training.batches import move_to
from bertkit.training.checkpoints import CHECKPOINT_RE, checkpoint_bytes, list_checkpoints, read_meta
from bertkit.training.config import TrainConfig
from bertkit.training.loop import Trainer


@dataclass
class PretrainConfig(TrainConfig):
    """Every key of a pre-training run, with its default (``bertkit pretrain --help`` lists them):
    the training loop's settings (:class:`~bertkit.training.config.TrainConfig`, four of them with
    pre-training defaults) and the run's own below."""

    max_steps: int = 10000  # optimizer steps (each = grad_accum micro-batches)
    warmup_steps: int = 1000  # steps of linear warmup to lr
    save_every: int = 1000  # steps between checkpoints (0: only at the end / by minutes)
    eval_every: int = 1000  # steps between validation runs (0: only at the end)

    data: str = ""  # prepared data directory (bertkit prepare): manifest.json + shards
    out: str = ""  # run directory: checkpoints, metrics.jsonl, tensorboard/
    model: str = "mini"  # preset (tiny mini small medium base large) or a config.json / checkpoint dir
    init: str | None = None  # checkpoint directory to start from (continued pre-training)
    tokenizer: str | None = None  # dir with vocab.txt saved in checkpoints (default: init's, else the data dir's)
    batch_size: int = 32  # sequences per micro-batch per process
    dropout: float | None = None  # override hidden and attention dropout (default: the model config's)
    eval_batches: int = 50  # validation batches per evaluation (0: the whole validation split)

    # ------------------------------------------------------------------ I/O

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> PretrainConfig:
        """Build from a dict of keys; unknown keys and ill-typed values are errors naming ``source``."""
        return cls().updated(d, source)

    @classmethod
    def from_file(cls, path: str | Path) -> PretrainConfig:
        return cls.from_dict(read_json(path), source=str(path))

    def save(self, path: str | Path) -> None:
        atomic_write_json(path, self.to_dict())

    def updated(self, d: dict[str, Any], source: str = "config") -> PretrainConfig:
        """A copy with the keys of ``d`` replaced (values coerced to each key's type)."""
        return settings.updated(self, d, source)

    def with_overrides(self, overrides: list[str]) -> PretrainConfig:
        """Apply ``key=value`` strings (command-line form)."""
        return self.updated(settings.parse_overrides(overrides), source="command line")

    def train_config(self, nsp: bool) -> TrainConfig:
        """The loop's settings of this run (MLM-only data: the NSP head gets no gradient)."""
        shared = {f.name: getattr(self, f.name) for f in dataclasses.fields(TrainConfig)}
        shared["find_unused_parameters"] = self.find_unused_parameters or not nsp
        return TrainConfig(**shared)


# ----------------------------------------------------------------------------------------------
# model and data


def read_manifest(data_dir: str | Path) -> dict:
    """The manifest of a prepared data directory, or a clear error."""
    if not data_dir:
        raise BertkitError("data: no prepared data directory given (--data DIR or data=DIR)")
    d = Path(data_dir)
    if not d.is_dir():
        raise BertkitError(f"{d}: no such data directory (prepare one with `bertkit prepare`)")
    if not (d / MANIFEST).is_file():
        raise BertkitError(
            f"{d}: no {MANIFEST}: not prepared data, or preparation did not finish (run `bertkit prepare`)"
        )
    return read_json(d / MANIFEST)


def build_model_config(cfg: PretrainConfig, manifest: dict, data_dir: Path):
    """The BertConfig for this run, checked against the data (vocabulary size, sequence length)."""
    overrides = {}
    if cfg.dropout is not None:
        overrides = {"hidden_dropout_prob": cfg.dropout, "attention_probs_dropout_prob": cfg.dropout}
    vocab_size = manifest["vocab_size"]
    if cfg.init:
        source = Path(cfg.init) / "config.json"
        mcfg = BertConfig.from_pretrained(cfg.init)
    elif cfg.model in PRESETS:
        source = None
        mcfg = BertConfig.from_preset(cfg.model, vocab_size=vocab_size)
    else:
        p = Path(cfg.model)
        if not p.exists():
            raise BertkitError(
                f"model: {cfg.model!r} is neither a preset ({', '.join(PRESETS)}) "
                f"nor an existing config file / checkpoint directory"
            )
        source = p / "config.json" if p.is_dir() else p
        mcfg = BertConfig.from_pretrained(p) if p.is_dir() else BertConfig.from_dict(read_json(p), str(p))
    if overrides:
        mcfg = with_overrides(mcfg, overrides, source=str(source or f"preset {cfg.model}"))
    if mcfg.vocab_size != vocab_size:
        raise BertkitError(
            f"{source}: vocab_size {mcfg.vocab_size} does not match the data's "
            f"vocab_size {vocab_size} ({data_dir / MANIFEST})"
        )
    if manifest["max_seq_length"] > mcfg.max_position_embeddings:
        raise BertkitError(
            f"{data_dir / MANIFEST}: max_seq_length {manifest['max_seq_length']} exceeds the "
            f"model's max_position_embeddings {mcfg.max_position_embeddings}"
        )
    return mcfg


def run_tokenizer(cfg: PretrainConfig, data_dir: Path):
    """The tokenizer saved into checkpoints (``tokenizer`` key, else ``init``'s, else the copy
    `bertkit prepare` keeps in the data directory), checked against the data's vocabulary hash;
    None when none of them has a vocab.txt."""
    if cfg.tokenizer:
        tdir = Path(cfg.tokenizer)
        if not (tdir / "vocab.txt").is_file():
            raise BertkitError(f"tokenizer: {tdir / 'vocab.txt'}: no such file")
    elif cfg.init and (Path(cfg.init) / "vocab.txt").is_file():
        tdir = Path(cfg.init)
    elif (data_dir / "vocab.txt").is_file():
        tdir = data_dir
    else:
        runtime.log("note: no tokenizer given (tokenizer=DIR); checkpoints will hold no vocab.txt")
        return None
    check_vocab(data_dir, tdir)
    return Tokenizer.from_pretrained(tdir)


def bert_flops_fn(mcfg) -> Any:
    """Training FLOPs of one micro-batch of a BertForPreTraining (3 x forward matmul FLOPs).

    Forward, for B sequences of T tokens with P masked positions, L layers, hidden H,
    FFN size I, vocabulary V::

        2*B*T*L*(4*H*H + 2*H*I)      # Q, K, V, output projections + the two FFN matmuls
      + 4*B*T*T*H*L                  # attention scores QK^T and the weighted sum AV
      + 2*B*P*(H*H + H*V)            # MLM transform + tied decoder, at masked positions only
      + 2*B*(H*H + 2*H)              # pooler + NSP classifier

    Backward is counted as twice the forward (total 3x); embeddings, norms, softmax omitted.
    """
    L, H, I, V = mcfg.num_hidden_layers, mcfg.hidden_size, mcfg.intermediate_size, mcfg.vocab_size

    def flops(batch) -> float:
        B, T = batch["input_ids"].shape
        P = batch["masked_positions"].shape[1] if "masked_positions" in batch else T
        fwd = (
            2 * B * T * L * (4 * H * H + 2 * H * I)
            + 4 * B * T * T * H * L
            + 2 * B * P * (H * H + H * V)
            + 2 * B * (H * H + 2 * H)
        )
        return 3.0 * fwd

    return flops


def pretraining_loss_fn(model, batch):
    """loss_fn for the Trainer: MLM at the masked positions (+ NSP when the batch has labels)."""
    out = model(
        batch["input_ids"], batch["attention_mask"], batch["token_type_ids"], masked_positions=batch["masked_positions"]
    )
    return pretraining_loss(out, batch["mlm_labels"], batch.get("nsp_labels"))


def make_eval_fn(data_dir: Path, batch_size: int, max_batches: int, device, seed: int):
    """eval_fn scoring the validation split (the same batches every time): token-weighted MLM
    loss / accuracy over masked positions, NSP loss / accuracy over sequences."""
    manifest = read_manifest(data_dir)
    n_val = manifest["splits"]["validation"]["num_instances"]
    if n_val == 0:
        runtime.log(f"note: {data_dir} has no validation instances; evaluation skipped")
        return None
    batch_size = min(batch_size, n_val)
    full = -(-n_val // batch_size)
    n_batches = full if max_batches <= 0 else min(max_batches, full)

    def eval_fn(model) -> dict[str, float]:
        loader = PretrainingLoader(
            data_dir, split="validation", batch_size=batch_size, rank=0, world_size=1, seed=seed, shuffle=False
        )
        sums = {"mlm_loss": 0.0, "mlm_acc": 0.0, "nsp_loss": 0.0, "nsp_acc": 0.0}
        n_tok = n_seq = 0
        for i, batch in enumerate(loader.one_pass()):  # unshuffled: the same batches every time
            if i == n_batches:
                break
            batch = move_to(batch, device)
            _, m = pretraining_loss_fn(model, batch)
            tok = int((batch["mlm_labels"] != -100).sum())
            seq = batch["input_ids"].shape[0]
            sums["mlm_loss"] += m["mlm_loss"] * tok
            sums["mlm_acc"] += m["mlm_acc"] * tok
            if "nsp_acc" in m:
                sums["nsp_loss"] += m["nsp_loss"] * seq
                sums["nsp_acc"] += m["nsp_acc"] * seq
            n_tok += tok
            n_seq += seq
        out = {"mlm_loss": sums["mlm_loss"] / max(1, n_tok), "mlm_acc": sums["mlm_acc"] / max(1, n_tok)}
        if manifest["nsp"]:
            out["nsp_loss"] = sums["nsp_loss"] / max(1, n_seq)
            out["nsp_acc"] = sums["nsp_acc"] / max(1, n_seq)
        return out

    return eval_fn


# ----------------------------------------------------------------------------------------------
# the run


def pretrain(cfg: PretrainConfig, resume: bool = False, overwrite: bool = False) -> dict:
    """Pre-train as ``cfg`` says; returns the Trainer's summary (also written to ``out/summary.json``).

    ``out`` must be new, empty, or an earlier pre-training run: continued with ``resume``,
    started again (its checkpoints and logs deleted) with ``overwrite``; a run that never
    reached a checkpoint is started again either way. The process holds ``out``'s lock
    (:func:`bertkit.outputs.exclusive`) while it runs.
    """
    if not cfg.out:
        raise BertkitError("out: no run directory given (--out DIR or out=DIR)")
    if resume and overwrite:
        raise BertkitError("--resume continues the run in --out, --overwrite starts it again: give one of them")
    out_dir = Path(cfg.out)
    model_file = cfg.model if cfg.model and Path(cfg.model).exists() else None
    inputs = [cfg.data, cfg.init, cfg.tokenizer, model_file]
    if not runtime.dist_info().is_main:  # rank 0 checks, locks and cleans for every process
        return _pretrain(cfg, resume)
    outputs.check_output_dir(
        out_dir,
        "pretrain",
        inputs=inputs,
        overwrite=overwrite,
        resume=resume or not list_checkpoints(out_dir),  # nothing to lose without a checkpoint
        hint="pass --resume to continue that run, --overwrite to start it again, or choose another --out"
        + (
            " (a torchrun restart: put --resume in the launch line so restarted workers continue "
            "from the newest checkpoint; on an empty directory it starts fresh)"
            if runtime.elastic_restart()
            else ""
        ),
    )
    with outputs.exclusive(out_dir):
        outputs.check_not_input(out_dir, inputs)  # again, now that out exists (symlinks)
        for p in outputs.remove_stale_temps(out_dir):  # e.g. the checkpoint a kill interrupted
            runtime.log(f"removed {p.name}, left by an interrupted save")
        if overwrite or not list_checkpoints(out_dir):  # a new run: no old records in its log
            clear_run(out_dir)
        outputs.write_marker(out_dir, "pretrain")
        return _pretrain(cfg, resume)


def clear_run(out_dir: Path) -> None:
    """Delete a pre-training run's checkpoints, logs and summary (``--overwrite``); keeps the
    lock and marker. Only what a run writes is touched."""
    for p in out_dir.iterdir():
        if CHECKPOINT_RE.match(p.name) or p.name == "tensorboard":
            shutil.rmtree(p)
        elif p.name in ("metrics.jsonl", "summary.json"):
            p.unlink()


def _pretrain(cfg: PretrainConfig, resume: bool) -> dict:
    if cfg.batch_size < 1:
        raise BertkitError(f"batch_size must be >= 1, got {cfg.batch_size}")
    data_dir = Path(cfg.data)
    manifest = read_manifest(data_dir)
    out_dir = Path(cfg.out)
    if resume:
        _warn_config_changes(cfg, list_checkpoints(out_dir), read_meta)
    tcfg = cfg.train_config(nsp=bool(manifest["nsp"]))
    tcfg.validate()

    mcfg = build_model_config(cfg, manifest, data_dir)
    tokenizer = run_tokenizer(cfg, data_dir)
    runtime.seed_everything(cfg.seed)  # the same initial weights on every rank
    if cfg.init:
        model = BertForPreTraining.from_pretrained(cfg.init, **_dropout_overrides(cfg))
        model.train()
    else:
        model = BertForPreTraining(mcfg)
    dist = runtime.dist_info()
    if dist.is_main:  # room for a checkpoint: found out now, not after hours of training
        outputs.check_free_space(out_dir, checkpoint_bytes(model), f"{out_dir} (a checkpoint)")
    loader = PretrainingLoader(
        data_dir, split="train", batch_size=cfg.batch_size, rank=dist.rank, world_size=dist.world_size, seed=cfg.seed
    )
    device = runtime.choose_device(cfg.device)
    eval_fn = make_eval_fn(data_dir, cfg.batch_size, cfg.eval_batches, device, cfg.seed)
    n_params = sum(p.numel() for p in model.parameters())
    runtime.log(
        f"pretrain: {cfg.model if not cfg.init else cfg.init} ({n_params / 1e6:.1f}M parameters), "
        f"data {data_dir} (seq {manifest['max_seq_length']}, {'MLM+NSP' if manifest['nsp'] else 'MLM'}), "
        f"global batch {cfg.batch_size * cfg.grad_accum * dist.world_size}, "
        + (f"{cfg.time_budget_s:g} s time budget, " if cfg.time_budget_s > 0 else f"{cfg.max_steps} steps, ")
        + f"{cfg.precision} on {device}"
    )
    trainer = Trainer(
        model,
        tcfg,
        pretraining_loss_fn,
        loader,
        out_dir=out_dir,
        eval_fn=eval_fn,
        tokenizer=tokenizer,
        flops_fn=bert_flops_fn(mcfg),
        run_config=cfg.to_dict(),
    )
    summary = trainer.fit(resume=resume)
    if trainer.dist.is_main:
        atomic_write_json(out_dir / "summary.json", {k: v for k, v in summary.items() if k != "history"})
    return summary


def _dropout_overrides(cfg: PretrainConfig) -> dict:
    if cfg.dropout is None:
        return {}
    return {"hidden_dropout_prob": cfg.dropout, "attention_probs_dropout_prob": cfg.dropout}


def _warn_config_changes(cfg: PretrainConfig, checkpoints: list[Path], read_meta) -> None:
    """On resume, say which keys differ from the run being resumed (max_steps may grow)."""
    if not checkpoints:
        return
    saved = read_meta(checkpoints[-1]).get("config", {})
    changed = [k for k, v in cfg.to_dict().items() if k in saved and saved[k] != v and k != "progress"]
    if changed:
        runtime.log(
            "note: resuming with changed keys: "
            + ", ".join(f"{k} {saved[k]!r} -> {getattr(cfg, k)!r}" for k in changed)
        )


# ----------------------------------------------------------------------------------------------
# curves


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The records of ``run_dir/metrics.jsonl`` (train and eval), in order."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise BertkitError(f"{path}: no such file (not a training run directory?)")
    return [obj for _, obj in iter_jsonl(path)]


def plot_curves(run_dir: str | Path, path: str | Path) -> Path:
    """PNG of a run's curves: training loss, validation MLM loss / accuracy, NSP accuracy vs step.

    Needs matplotlib (a bertkit dependency).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise BertkitError("plotting needs matplotlib: pip install matplotlib") from None
    recs = read_metrics(run_dir)
    train = [r for r in recs if r.get("kind") == "train"]
    evals = [r for r in recs if r.get("kind") == "eval"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    ax = axes[0]
    ax.plot([r["step"] for r in train], [r["loss"] for r in train], label="train loss (MLM+NSP)", alpha=0.6)
    if evals:
        ax.plot([r["step"] for r in evals], [r["mlm_loss"] for r in evals], "o-", label="validation MLM loss")
    ax.set_xlabel("step")
    ax.set_title("loss")
    ax.legend()
    for ax, key, title in (
        (axes[1], "mlm_acc", "validation MLM accuracy"),
        (axes[2], "nsp_acc", "validation NSP accuracy"),
    ):
        pts = [(r["step"], r[key]) for r in evals if key in r]
        if pts:
            ax.plot(*zip(*pts), "o-")
        ax.set_xlabel("step")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].grid(alpha=0.3)
    fig.suptitle(Path(run_dir).name)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
