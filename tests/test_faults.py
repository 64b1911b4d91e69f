"""Fault injection: each case of issue #17's "silent wrong results" and "tracebacks" lists is
reproduced here and must end in one clear ``bertkit CMD: error: ...`` line and a non-zero exit
(or, for the silent cases, in the right result). Every test here failed before its fix."""

from __future__ import annotations

import json
import math

import pytest
import torch

from bertkit.checkpoint import check_finite, first_non_finite
from bertkit.cli import main
from bertkit.config import BertConfig
from bertkit.errors import BertkitError
from bertkit.fileio import atomic_write_json, dumps_json
from bertkit.heads import BertForSequenceClassification
from bertkit.tasks import get_task
from bertkit.tasks.checkpoints import write_predictions
from bertkit.tasks.classification import TextExample
from bertkit.tokenization import Tokenizer

pytestmark = pytest.mark.usefixtures("one_thread")

WORDS = "the a film plot is was good great bad awful very .".split()
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS


def tiny_config(**kw) -> BertConfig:
    base = dict(
        vocab_size=len(VOCAB),
        max_position_embeddings=32,
        hidden_size=32,
        num_attention_heads=2,
        intermediate_size=64,
        id2label={0: "neg", 1: "pos"},
    )
    base.update(kw)
    return BertConfig.from_preset("tiny", **base)


def save_classifier(directory, poison: str | None = None, value: float = math.nan) -> str:
    """A random two-label classifier checkpoint; ``poison`` names a tensor to fill with ``value``."""
    torch.manual_seed(0)
    model = BertForSequenceClassification(tiny_config())
    if poison is not None:
        with torch.no_grad():
            dict(model.named_parameters())[poison].view(-1)[3] = value
    model.save_pretrained(directory, tokenizer=Tokenizer(VOCAB))
    return str(directory)


def labelled_tsv(path, n=6, text="the film was very good . the plot is great .") -> str:
    rows = [(text, "pos" if i % 2 else "neg") for i in range(n)]
    path.write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows), "utf-8")
    return str(path)


def cli(capsys, *argv) -> tuple[int, str, str]:
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def one_error_line(err: str, command: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.startswith(f"bertkit {command}: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# ------------------------------------------------------------------------ 6. non-finite models


BAD_TENSOR = "bert.encoder.layer.0.attention.self.query.weight"


def test_first_non_finite_names_the_first_bad_tensor():
    sd = {"a": torch.zeros(3), "b": torch.tensor([1.0, math.inf, math.nan]), "c": torch.tensor([math.nan])}
    assert first_non_finite(sd) == ("b", 1, 1)
    assert first_non_finite({"ids": torch.arange(3), "a": torch.ones(2)}) is None
    with pytest.raises(BertkitError, match=r"^src: tensor b is not finite \(1 NaN, 1 infinite"):
        check_finite(sd, "src")


@pytest.mark.parametrize("value", [math.nan, math.inf])
@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_non_finite_model_refused_by_evaluate_and_predict(tmp_path, capsys, command, value):
    model = save_classifier(tmp_path / "m", poison=BAD_TENSOR, value=value)
    data = labelled_tsv(tmp_path / "d.tsv")
    extra = ["--out", str(tmp_path / "p.jsonl")] if command == "predict" else []
    rc, out, err = cli(
        capsys, command, "--model", model, "--data", data, "--task", "classification", "--no-progress", *extra
    )
    assert rc == 2 and out == ""
    line = one_error_line(err, command)
    assert f"tensor {BAD_TENSOR} is not finite" in line and str(tmp_path / "m") in line
    assert not (tmp_path / "p.jsonl").exists()


def test_inference_load_refuses_non_finite_models(tmp_path):
    """bertkit.load (embed, fill-mask, export, serve) goes through the same check."""
    from bertkit.inference import load
    from bertkit.model import BertModel

    torch.manual_seed(0)
    encoder = BertModel(tiny_config(id2label={}))
    with torch.no_grad():
        encoder.pooler.dense.bias[0] = math.inf
    encoder.save_pretrained(tmp_path / "enc", tokenizer=Tokenizer(VOCAB))
    save_classifier(tmp_path / "cls", poison=BAD_TENSOR)
    for d, name in ((tmp_path / "enc", "pooler.dense.bias"), (tmp_path / "cls", BAD_TENSOR)):
        with pytest.raises(BertkitError, match=f"tensor {name} is not finite"):
            load(d, device="cpu", task="classification" if d.name == "cls" else None)


def test_from_pretrained_refuses_non_finite_unless_asked(tmp_path):
    model = save_classifier(tmp_path / "m", poison="classifier.weight")
    with pytest.raises(BertkitError, match="tensor classifier.weight is not finite"):
        BertForSequenceClassification.from_pretrained(model)
    loaded = BertForSequenceClassification.from_pretrained(model, allow_non_finite=True)
    assert first_non_finite(loaded)[0] == "classifier.weight"


def test_overflowing_outputs_are_refused_not_written(tmp_path, capsys):
    """Finite weights whose activations overflow (word + position embedding = 6e38 > float32's
    max): the output is NaN, refused rather than written as ``"probability": NaN``."""
    model = save_classifier(tmp_path / "m")
    m = BertForSequenceClassification.from_pretrained(model)
    with torch.no_grad():
        m.bert.embeddings.word_embeddings.weight[:, 0] = 3e38
        m.bert.embeddings.position_embeddings.weight[:, 0] = 3e38
    m.save_pretrained(model, tokenizer=Tokenizer(VOCAB))
    data = labelled_tsv(tmp_path / "d.tsv")
    rc, out, err = cli(
        capsys, "predict", "--model", model, "--data", data, "--task", "classification", "--no-progress",
        "--out", str(tmp_path / "p.jsonl"),
    )  # fmt: skip
    assert rc == 2 and "output is not finite (NaN or infinity) for example 1" in one_error_line(err, "predict")
    assert not (tmp_path / "p.jsonl").exists()


def test_predictions_file_is_always_valid_json(tmp_path):
    task = get_task("classification")
    examples = [TextExample("a", None, None, 2), TextExample("b", None, None, 3)]
    write_predictions(tmp_path / "ok.jsonl", task, examples, [{"label": "x", "probability": 0.5}] * 2)
    assert [json.loads(x)["probability"] for x in (tmp_path / "ok.jsonl").read_text().splitlines()] == [0.5, 0.5]
    preds = [{"label": "x", "probability": 0.5}, {"label": "x", "probability": math.nan}]
    with pytest.raises(BertkitError, match=r"p.jsonl: the model's output for example 2 is not finite"):
        write_predictions(tmp_path / "p.jsonl", task, examples, preds)
    assert not (tmp_path / "p.jsonl").exists()


def test_metrics_json_writes_undefined_numbers_as_null(tmp_path):
    atomic_write_json(tmp_path / "m.json", {"pearson": math.nan, "x": [math.inf, 1.0], "n": 2})
    assert json.loads((tmp_path / "m.json").read_text()) == {"pearson": None, "x": [None, 1.0], "n": 2}
    assert dumps_json({"a": (math.nan,)}) == '{"a": [null]}'


# ------------------------------------------------------------------------ 7. evaluate's stdout


def test_evaluate_stdout_is_only_json_and_seq_length_is_checked(tmp_path, capsys):
    """Item 7: truncation notes went to stdout before the JSON (``| jq`` broke). And a
    ``--max-seq-length`` beyond the model's positions failed at the first forward."""
    model = save_classifier(tmp_path / "m")
    data = labelled_tsv(tmp_path / "d.tsv")
    outcomes = {}
    for length in ("8", "33"):
        outcomes[length] = cli(
            capsys, "evaluate", "--model", model, "--data", data, "--task", "classification", "--no-progress",
            "--max-seq-length", length,
        )  # fmt: skip
    rc, out, err = outcomes["8"]
    assert rc == 0
    assert set(json.loads(out)["test"]) >= {"accuracy"}  # the whole of stdout parses
    assert "6 of 6 examples truncated" in err
    rc, out, err = outcomes["33"]
    assert rc == 2 and out == ""
    assert "--max-seq-length 33 is longer than the model's 32 positions" in one_error_line(err, "evaluate")


# ------------------------------------------------------------------ 9. label set, config ranges


def save_encoder(directory, **kw) -> str:
    from bertkit.model import BertModel

    torch.manual_seed(0)
    BertModel(tiny_config(id2label={}, **kw)).save_pretrained(directory, tokenizer=Tokenizer(VOCAB))
    return str(directory)


def conll(path, sentences) -> str:
    path.write_text("".join("".join(f"{w}\t{t}\n" for w, t in s) + "\n" for s in sentences), "utf-8")
    return str(path)


def finetune_args(tmp_path, init, train, dev, *extra) -> list[str]:
    return [
        "finetune", "--task", "tagging", "--train", train, "--dev", dev, "--init", init,
        "--out", str(tmp_path / "out"), "--epochs", "1", "--batch-size", "4", "--no-progress", "--device", "cpu",
        *extra,
    ]  # fmt: skip


def test_max_train_examples_keeps_the_full_label_set(tmp_path, capsys):
    """Issue #17 item 9: a subset lacking a tag made dev fail with "does not occur in the training data"."""
    common = [[("the", "O"), ("film", "B-x")]] * 8
    rare = [[("the", "O"), ("plot", "B-rare")]]
    train = conll(tmp_path / "train.conll", rare + common)  # the seed-0 subset of 2: sentences 7 and 9
    dev = conll(tmp_path / "dev.conll", rare + common[:2])
    init = save_encoder(tmp_path / "init")
    rc, _, err = cli(capsys, *finetune_args(tmp_path, init, train, dev, "--max-train-examples", "2"))
    assert rc == 0, err
    task = json.loads((tmp_path / "out" / "task.json").read_text())
    assert sorted(task["labels"]) == ["B-rare", "B-x", "O"]


@pytest.mark.parametrize(
    "flag,value,message",
    [
        ("--dropout", "2", "dropout must be a probability in [0, 1), got 2.0"),
        ("--dropout", "-0.1", "dropout must be a probability in [0, 1)"),
        ("--weight-decay", "-1", "weight_decay must be >= 0"),
        ("--max-seq-length", "1000", "--max-seq-length 1000 is longer than the model's 32 positions"),
    ],
)
def test_bad_finetune_settings_refused_up_front(tmp_path, capsys, flag, value, message):
    sents = [[("the", "O"), ("film", "B-x")], [("a", "O"), ("plot", "O")]]
    train = conll(tmp_path / "train.conll", sents * 2)
    init = save_encoder(tmp_path / "init")
    rc, out, err = cli(capsys, *finetune_args(tmp_path, init, train, train, flag, value))
    assert rc == 2 and message in one_error_line(err, "finetune")
    assert "fine-tune lr" not in err and not (tmp_path / "out").exists()  # refused before training


@pytest.mark.parametrize(
    "key,value",
    [("hidden_dropout_prob", 2.0), ("attention_probs_dropout_prob", -0.5), ("classifier_dropout", 1.0),
     ("layer_norm_eps", 0.0), ("initializer_range", -1.0)],
)  # fmt: skip
def test_model_config_ranges_are_checked(key, value):
    with pytest.raises(BertkitError, match=f"config: {key} must be"):
        BertConfig.from_dict({key: value})


# ------------------------------------------------------------------ 11. format detection


def test_format_detection_honours_max_line_bytes(tmp_path, monkeypatch):
    """Item 11: detection read lines with the default limit whatever --max-line-bytes said, so a
    file of long paragraph lines (beyond the default, within the limit) was taken for one
    sentence per line ("bert"). A smaller default here stands in for the 9 MB line of the issue."""
    from bertkit import corpus

    monkeypatch.setattr(corpus, "DEFAULT_MAX_LINE_BYTES", 1000)
    paragraph = " ".join(f"This is sentence number {i} of the paragraph." for i in range(60))  # ~2.8 kB
    p = tmp_path / "long.txt"
    p.write_text(f"{paragraph}\n\n{paragraph}\n", "utf-8")
    stats = corpus.CorpusStats()
    docs = list(corpus.iter_documents([p], "auto", max_line_bytes=10_000, stats=stats))
    assert len(docs) == 2 and not docs[0].presplit and stats.long_lines == 0


# ------------------------------------------------------------------ tracebacks -> one line


def test_tokenize_pair_max_length_shorter_than_the_special_tokens(tmp_path, capsys, monkeypatch):
    """``tokenize --pair --max-length 2`` raised OverflowError from the Rust engine."""
    import io
    import sys

    d = tmp_path / "tok"
    Tokenizer(VOCAB).save(d)
    for n, ok in (("2", False), ("3", True)):
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"the film\tthe plot\n")))
        rc, out, err = cli(capsys, "tokenize", "--model", str(d), "--pair", "--max-length", n)
        if ok:
            assert rc == 0 and json.loads(out)["tokens"] == ["[CLS]", "[SEP]", "[SEP]"]
        else:
            assert rc == 2 and "a pair ([CLS] a [SEP] b [SEP]) needs 3 special tokens" in one_error_line(
                err, "tokenize"
            )


@pytest.mark.parametrize("damage", ["fake", "truncated"])
def test_fake_or_truncated_gzip_input(tmp_path, capsys, damage):
    """A .gz that is not gzip (BadGzipFile) or cut short (EOFError) was a traceback."""
    import gzip

    text = "".join(f"the film was very good {i} .\n" for i in range(400)).encode()
    data = text if damage == "fake" else gzip.compress(text)[:200]
    p = tmp_path / "corpus.txt.gz"
    p.write_bytes(data)
    rc, out, err = cli(capsys, "vocab", "--input", str(p), "--out", str(tmp_path / "v"), "--quiet")
    line = one_error_line(err, "vocab")
    assert rc == 2 and str(p) in line and ("truncated" if damage == "truncated" else "not valid gzip data") in line


# ------------------------------------------------------------------ 10. training loop


class _Loader:
    """An endless loader of fixed random regression batches."""

    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.batches = [{"x": torch.randn(4, 3, generator=g), "y": torch.randn(4, generator=g)} for _ in range(4)]

    def __iter__(self):
        while True:
            yield from self.batches


def _mse(model, batch):
    loss = torch.nn.functional.mse_loss(model(batch["x"]).squeeze(-1), batch["y"])
    return loss, {}


def _trainer(model=None, loss_fn=_mse, out_dir=None, **kw):
    from bertkit.training.config import TrainConfig
    from bertkit.training.loop import Trainer

    torch.manual_seed(0)
    base = dict(max_steps=6, lr=1e-2, warmup_steps=3, log_every=1, progress=False, seed=0, device="cpu")
    base.update(kw)
    return Trainer(model or torch.nn.Linear(3, 1), TrainConfig(**base), loss_fn, _Loader(), out_dir=out_dir)


def test_logged_learning_rate_is_the_one_the_step_used(tmp_path):
    """Item 10: metrics.jsonl showed the NEXT step's lr (read after scheduler.step()): step 1
    logged the warmup's second value and the last step 0. Each record is now the step's own."""
    from bertkit.optim import linear_warmup_linear_decay

    factor = linear_warmup_linear_decay(3, 6)
    tr = _trainer(out_dir=tmp_path / "run")
    used = []  # the lr each optimizer.step() ran with, seen from inside the optimizer
    tr.optimizer.register_step_pre_hook(lambda opt, args, kwargs: used.append(opt.param_groups[0]["lr"]))
    tr.fit()
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    logged = [r["lr"] for r in records if r["kind"] == "train"]
    assert logged == used == [1e-2 * factor(s) for s in range(6)]
    assert logged[0] == 0.0 and logged[-1] > 0  # transformers' warmup starts at 0; the last step is not 0


def test_non_finite_initial_weights_are_named_not_blamed_on_the_lr():
    model = torch.nn.Linear(3, 1)
    with torch.no_grad():
        model.weight[0, 1] = math.nan
    with pytest.raises(BertkitError) as e:
        _trainer(model).fit()
    assert str(e.value).startswith("training cannot start: non-finite initial weights (tensor weight: 1 NaN")
    assert "learning rate" not in str(e.value)


def test_divergence_message_says_what_was_detected_and_no_save_every_without_out_dir(tmp_path):
    """The message said "lower lr ... (or set save_every)" also in finetune, which has no save_every."""

    def nan_from_step_3(model, batch, calls=[0]):  # noqa: B006 - a call counter
        calls[0] += 1
        loss, m = _mse(model, batch)
        return (loss * math.nan if calls[0] >= 3 else loss), m

    with pytest.raises(BertkitError) as e:
        _trainer(loss_fn=nan_from_step_3, divergence_patience=2).fit()
    msg = str(e.value)
    assert msg.startswith("training diverged: non-finite loss at step 3 (2 in a row)")
    assert "save_every" not in msg and "lower the learning rate" in msg


def test_resume_with_another_model_size_is_one_line(tmp_path):
    """``pretrain --resume model=mini`` on a tiny run raised torch's size-mismatch RuntimeError."""

    class Ids:
        def __iter__(self):
            g = torch.Generator().manual_seed(0)
            while True:
                yield {"input_ids": torch.randint(5, len(VOCAB), (2, 6), generator=g)}

    def loss_fn(model, batch):
        return model(batch["input_ids"]).pow(2).mean(), {}

    from bertkit.training.config import TrainConfig
    from bertkit.training.loop import Trainer

    def trainer(**size):
        config = TrainConfig(max_steps=2, lr=1e-3, warmup_steps=0, progress=False, device="cpu", save_every=1)
        model = BertForSequenceClassification(tiny_config(**size))
        return Trainer(model, config, loss_fn, Ids(), out_dir=tmp_path / "run", tokenizer=Tokenizer(VOCAB))

    trainer().fit()
    with pytest.raises(BertkitError) as e:
        trainer(hidden_size=64, intermediate_size=128).fit(resume=True)
    msg = str(e.value)
    assert msg.startswith(f"{tmp_path / 'run' / 'checkpoint-2'}: the checkpoint was saved by a different model")
    assert "hidden_size 32 in the checkpoint vs 64 now" in msg and "\n" not in msg


def test_prepare_says_when_long_lines_were_skipped(tmp_path, capsys):
    """Item 11: with only over-long lines the error said "no instances could be made" and not why."""
    tok = tmp_path / "tok"
    Tokenizer(VOCAB).save(tok)
    corpus = tmp_path / "c.txt"
    corpus.write_text(" ".join(["the film was very good ."] * 40) + "\n", "utf-8")  # ~1 kB, one line
    rc, out, err = cli(
        capsys, "prepare", "--input", str(corpus), "--tokenizer", str(tok), "--out", str(tmp_path / "data"),
        "--max-line-bytes", "200", "--workers", "1", "--max-seq-length", "16",
    )  # fmt: skip
    line = one_error_line(err, "prepare")
    assert rc == 2 and "no instances could be made" in line
    assert f"1 line(s) longer than --max-line-bytes 200 were skipped ({corpus}:1 (" in line
    # prepared in two parts on two "machines": the merge says the same
    args = [
        "--input", str(corpus), "--tokenizer", str(tok), "--out", str(tmp_path / "sharded"),
        "--max-line-bytes", "200", "--workers", "1", "--max-seq-length", "16", "--num-shards", "2",
    ]  # fmt: skip
    for i in ("0", "1"):
        assert cli(capsys, "prepare", *args, "--shard-index", i)[0] == 0
    rc, out, err = cli(capsys, "prepare", "--merge", "--out", str(tmp_path / "sharded"), "--num-shards", "2")
    line = one_error_line(err, "prepare")
    assert rc == 2 and "no instances in any part" in line and "1 line(s) longer than --max-line-bytes 200" in line


def test_vocab_alphabet_limit_below_one(tmp_path, capsys):
    corpus = tmp_path / "c.txt"
    corpus.write_text("the film was very good .\n" * 10, "utf-8")
    rc, _, err = cli(capsys, "vocab", "--input", str(corpus), "--out", str(tmp_path / "v"), "--limit-alphabet", "0")
    assert rc == 2 and "the alphabet limit must be >= 1, got 0" in one_error_line(err, "vocab")
