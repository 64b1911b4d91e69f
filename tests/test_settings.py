"""One definition per setting: Literal types as the only lists of allowed values, PretrainConfig
holding TrainConfig's settings, and command-line options derived from the dataclass fields."""

from __future__ import annotations

import dataclasses
import json

import pytest
from conftest import REPO

from bertkit import settings
from bertkit.cli import main
from bertkit.errors import BertkitError
from bertkit.finetune import FinetuneConfig
from bertkit.pretrain import PretrainConfig
from bertkit.pretraining.format import PrepareOptions
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
    for cls in (settings.InferenceOptions,):
        assert set(settings.field_docs(cls)) == {f.name for f in dataclasses.fields(cls)}
    assert settings.field_docs(PrepareOptions)["format"].startswith("input format")
