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
from bertkit.finetune import write_predictions
from bertkit.heads import BertForSequenceClassification
from bertkit.tasks import get_task
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


def test_evaluate_stdout_is_only_json_when_examples_are_truncated(tmp_path, capsys):
    model = save_classifier(tmp_path / "m")
    data = labelled_tsv(tmp_path / "d.tsv")
    rc, out, err = cli(
        capsys, "evaluate", "--model", model, "--data", data, "--task", "classification", "--no-progress",
        "--max-seq-length", "8",
    )  # fmt: skip
    assert rc == 0
    assert set(json.loads(out)["test"]) >= {"accuracy"}  # the whole of stdout parses
    assert "6 of 6 examples truncated" in err
