"""One definition per setting: Literal types as the only lists of allowed values, PretrainConfig
holding TrainConfig's settings, and command-line options derived from the dataclass fields."""

from __future__ import annotations

import dataclasses
import inspect
import json

import pytest
from conftest import REPO

from bertkit import settings
from bertkit.cli import main
from bertkit.errors import BertkitError
from bertkit.finetune import FinetuneConfig
from bertkit.pretrain import PretrainConfig
from bertkit.pretraining.format import InspectOptions, PrepareOptions
from bertkit.training.config import TrainConfig


def test_allowed_values_come_from_the_literal_types():
    from bertkit import corpus, optim, runtime
    from bertkit.cli.finetune import TASK_NAMES
    from bertkit.tasks import TASKS

    assert runtime.PRECISIONS == settings.choices(settings.Precision) == ("fp32", "bf16", "fp16")
    assert optim.OPTIMIZERS == settings.choices(settings.Optimizer)
    assert optim.SCHEDULES == settings.choices(settings.Schedule)
    assert corpus.FORMATS == settings.choices(settings.CorpusFormat)
    assert TASK_NAMES == tuple(TASKS)


def test_pretrain_config_holds_every_training_setting():
    train = {f.name for f in dataclasses.fields(TrainConfig)}
    assert train <= {f.name for f in dataclasses.fields(PretrainConfig)}
    cfg = PretrainConfig().with_overrides(["adam_beta2=0.98", "lr_backoff=0.25", "max_rollbacks=1", "lr=2e-4"])
    tcfg = cfg.train_config(nsp=True)
    assert (tcfg.adam_beta2, tcfg.lr_backoff, tcfg.max_rollbacks, tcfg.lr) == (0.98, 0.25, 1, 2e-4)
    assert tcfg.max_steps == 10000 and not tcfg.find_unused_parameters  # pre-training's default
    assert cfg.train_config(nsp=False).find_unused_parameters  # MLM-only: the NSP head idles


def test_saved_run_configs_with_the_old_keys_still_load():
    old = {"data": "d", "out": "o", "model": "mini", "init": None, "tokenizer": None, "max_steps": 5}
    old |= {"batch_size": 8, "grad_accum": 1, "lr": 1e-4, "warmup_steps": 0, "schedule": "linear"}
    old |= {"optimizer": "adamw", "weight_decay": 0.01, "max_grad_norm": 1.0, "precision": "bf16"}
    old |= {"device": "auto", "dropout": None, "save_every": 0, "save_every_minutes": 0.0, "keep_last": 3}
    old |= {"eval_every": 0, "eval_batches": 50, "log_every": 10, "seed": 0, "compile": False}
    old |= {"activation_checkpointing": False, "divergence_patience": 5, "divergence_action": "rollback"}
    old |= {"progress": True}
    cfg = PretrainConfig.from_dict(old)
    assert {k: getattr(cfg, k) for k in old} == old
    for path in sorted((REPO / "configs").glob("*.json")):
        assert PretrainConfig.from_file(path).to_dict().items() >= json.loads(path.read_text()).items()


def test_a_literal_rejects_other_values_in_one_line():
    with pytest.raises(BertkitError, match=r"command line: precision must be one of fp32, bf16, fp16 \(got 'fp8'\)"):
        PretrainConfig().with_overrides(["precision=fp8"])
    with pytest.raises(BertkitError, match="--masking must be one of static, dynamic"):
        PrepareOptions(masking="sometimes").resolved()


def _captured(monkeypatch, target: str, result=None) -> dict:
    seen: dict = {}

    def fake(*args, **kwargs):
        seen["args"], seen["kwargs"] = args, kwargs
        return result

    monkeypatch.setattr(target, fake)
    return seen


def test_pretrain_flags_and_key_values_are_one_grammar(monkeypatch, tmp_path):
    seen = _captured(monkeypatch, "bertkit.pretrain.pretrain")
    cfg_file = tmp_path / "c.json"
    cfg_file.write_text(json.dumps({"lr": 3e-4, "max_steps": 7, "batch_size": 4}))
    argv = ["pretrain", "--config", str(cfg_file), "--data", "D", "--adam-beta2", "0.98", "--no-progress"]
    assert main([*argv, "max_rollbacks=2", "--max-steps", "9", "batch_size=16"]) == 0
    cfg = seen["args"][0]
    assert (cfg.data, cfg.adam_beta2, cfg.progress, cfg.max_rollbacks) == ("D", 0.98, False, 2)
    assert (cfg.lr, cfg.max_steps, cfg.batch_size) == (3e-4, 9, 16)  # file, then flags / key=value
    assert cfg.eval_every == PretrainConfig().eval_every  # untouched keys keep their defaults


def test_prepare_flags_default_to_the_options(monkeypatch):
    seen = _captured(monkeypatch, "bertkit.pretraining.prepare.prepare", {"counts": {}, "up_to_date": True})
    assert main(["prepare", "--input", "x.txt", "--tokenizer", "t", "--out", "o"]) == 0
    assert seen["args"][3] == PrepareOptions()
    main(["prepare", "--input", "x", "--tokenizer", "t", "--out", "o", "--mask-prob", "0.2", "--no-nsp"])
    assert (seen["args"][3].masked_lm_prob, seen["args"][3].nsp) == (0.2, False)


def test_finetune_flags_default_to_the_config(monkeypatch, capsys):
    seen = _captured(monkeypatch, "bertkit.finetune.finetune", {})
    argv = ["finetune", "--task", "classification", "--train", "a", "--dev", "b", "--init", "m", "--out", "o"]
    assert main(argv) == 0
    cfg = seen["args"][0]
    assert cfg == FinetuneConfig("classification", "a", "b", init="m", out="o")


def test_every_flag_of_every_settings_dataclass_has_its_help_text():
    """Each field a command turns into a flag has a documenting comment, also where the formatter
    wrapped a long line (``format: CorpusFormat = (`` / ``"auto"  # doc`` / ``)``): that wrapped
    form once left ``bertkit prepare --format`` with no help at all."""
    from bertkit.quickstart.options import QuickstartOptions
    from bertkit.serve.config import ServeConfig

    not_flags = {"model_config", "tokenizer", "search_lrs", "search_batch_sizes", "search_epochs"}  # Python only
    for cls in (TrainConfig, PretrainConfig, PrepareOptions, FinetuneConfig, QuickstartOptions, ServeConfig):
        docs = settings.field_docs(cls)
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in docs and f.name not in not_flags]
        assert not missing, f"{cls.__name__}: no doc comment for {missing}"
    small = (settings.InferenceOptions, settings.EmbedOptions, settings.TextFileOptions, settings.FillMaskOptions)
    small += (settings.TokenizeOptions, settings.VocabOptions, settings.ExportOptions, settings.ConvertOptions)
    small += (InspectOptions,)
    for cls in small:
        assert set(settings.field_docs(cls)) == {f.name for f in dataclasses.fields(cls)}
    assert settings.field_docs(PrepareOptions)["format"].startswith("input format")


def _defaults(fn, names) -> dict:
    params = inspect.signature(fn).parameters
    return {n: params[n].default for n in names}


def test_vocab_and_export_flags_pass_the_library_defaults(monkeypatch, tmp_path):
    """A command run without option flags does what its library call does without arguments."""
    from bertkit import export, tokenization

    real_train_vocab = tokenization.train_vocab
    seen = _captured(monkeypatch, "bertkit.tokenization.train_vocab")
    (tmp_path / "a.txt").write_text("some text\n")
    with pytest.raises(AttributeError):  # the fake returns no tokenizer: stop after the call
        main(["vocab", "--input", str(tmp_path / "a.txt"), "--out", str(tmp_path / "v"), "--quiet"])
    kw = seen["kwargs"]
    names = [n for n in kw if n != "progress"]
    assert len(names) == 7 and kw == {**_defaults(real_train_vocab, names), "progress": False}
    real_export = export.export_onnx
    seen = _captured(monkeypatch, "bertkit.export.export_onnx", {"files": [], "parity": {}})
    assert main(["export", "--model", "m", "--out", "o"]) == 0
    names = ["quantize", "eval_file", "kind", "pooling", "overwrite"]
    assert {n: seen["kwargs"][n] for n in names} == _defaults(real_export, names)
    assert main(["export", "--model", "m", "--out", "o", "--eval", "dev.tsv", "--kind", "embedding"]) == 0
    assert (seen["kwargs"]["eval_file"], seen["kwargs"]["kind"]) == ("dev.tsv", "embedding")


class _FakePredictor:
    """Stands in for ``bertkit.load``'s Predictor: records the keyword arguments of each call."""

    def __init__(self):
        self.calls: dict[str, dict] = {}
        self.config = type("C", (), {"hidden_size": 4})()

    def iter_embed(self, texts, **kw):
        self.calls["iter_embed"] = kw
        return iter(())

    def fill_mask(self, texts, **kw):
        self.calls["fill_mask"] = kw
        return [{"text": t} for t in texts]


def test_embed_and_fill_mask_flags_pass_the_library_defaults(monkeypatch, tmp_path, capsys):
    from bertkit.embedding_files import iter_input_texts
    from bertkit.inference import Predictor, load

    fake = _FakePredictor()
    loads = _captured(monkeypatch, "bertkit.inference.load", fake)
    reads = _captured(monkeypatch, "bertkit.embedding_files.iter_input_texts", iter(()))
    (tmp_path / "a.txt").write_text("x\n")
    assert main(["embed", "--model", "m", "--input", str(tmp_path / "a.txt"), "--out", str(tmp_path / "e.npy")]) == 0
    kw = fake.calls["iter_embed"]
    names = ["pooling", "normalize", "chunk_size"]
    assert {n: kw[n] for n in names} == _defaults(Predictor.iter_embed, names)
    assert reads["kwargs"] == _defaults(iter_input_texts, ["column", "text_field"])
    load_names = ["device", "precision", "max_length", "batch_size", "max_tokens"]
    assert loads["kwargs"] == _defaults(load, load_names)
    assert main(["fill-mask", "--model", "m", "a [MASK] b"]) == 0
    assert fake.calls["fill_mask"] == _defaults(Predictor.fill_mask, ["top_k"])
    assert main(["fill-mask", "--model", "m", "--top-k", "3", "a [MASK] b"]) == 0
    assert fake.calls["fill_mask"] == {"top_k": 3}
    capsys.readouterr()
