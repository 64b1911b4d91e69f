"""Fine-tuning end to end on a tiny random model and tiny hand-made files, one test per family:
the loss falls, metrics.json has the documented shape, the task checkpoint loads for evaluate
(same numbers) and predict (predictions file round-trips), and bad input fails clearly."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from bertkit.cli import main
from bertkit.config import BertConfig
from bertkit.errors import BertkitError
from bertkit.finetune import FinetuneConfig, evaluate, finetune, predict
from bertkit.model import BertModel
from bertkit.tasks.checkpoints import read_predictions
from bertkit.tokenization import Tokenizer

WORDS = (
    "the a film plot is was good great fine bad awful dull . , ? who where john mary lives in paris "
    "rome he she eats runs sleeps man dog cat sat on mat today and very"
).split()
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS + ["##s"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def init_dir(tmp_path_factory):
    """A tiny random BERT encoder saved as a checkpoint directory with its vocabulary."""
    d = tmp_path_factory.mktemp("init") / "tiny"
    torch.manual_seed(0)
    cfg = BertConfig.from_preset(
        "tiny",
        vocab_size=len(VOCAB),
        max_position_embeddings=64,
        hidden_size=64,
        num_attention_heads=2,
        intermediate_size=128,
    )
    BertModel(cfg).save_pretrained(d, tokenizer=Tokenizer(VOCAB))
    return str(d)


def fast(**kw) -> FinetuneConfig:
    base = dict(lr=2e-3, batch_size=8, epochs=6, warmup_ratio=0.0, progress=False, device="cpu")
    base.update(kw)
    return FinetuneConfig(**base)


def sentiment_rows(n, seed):
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = i % 2
        word = rng.choice(["good", "great", "fine"] if label else ["bad", "awful", "dull"])
        subject = rng.choice(["the film", "the plot", "a film"])
        rows.append((f"{subject} {rng.choice(['is', 'was'])} very {word} .", label))
    return rows


def write_tsv(path, header, rows):
    path.write_text("\t".join(header) + "\n" + "".join("\t".join(map(str, r)) + "\n" for r in rows), "utf-8")
    return str(path)


def loss_fell(result):
    run = result["runs"][0]
    return run["train_loss_last"] < run["train_loss_first"]


def test_classification_end_to_end(init_dir, tmp_path):
    tr = write_tsv(tmp_path / "train.tsv", ["sentence", "label"], sentiment_rows(48, 0))
    dv = write_tsv(tmp_path / "dev.tsv", ["sentence", "label"], sentiment_rows(12, 1))
    te = write_tsv(tmp_path / "test.tsv", ["sentence", "label"], sentiment_rows(12, 2))
    out = tmp_path / "out"
    r = finetune(fast(task="classification", train=tr, dev=dv, test=te, init=init_dir, out=str(out)))
    assert loss_fell(r)
    assert r["dev"]["accuracy"] >= 0.75 and set(r["dev"]) >= {"accuracy", "f1", "mcc", "std", "per_seed"}
    assert len(r["dev_history"]) == 6 and [h["epoch"] for h in r["dev_history"]] == [1, 2, 3, 4, 5, 6]
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["dev"]["accuracy"] == r["dev"]["accuracy"] and saved["test"] == r["test"]
    assert json.loads((out / "config.json").read_text())["id2label"] == {"0": "0", "1": "1"}
    log = [json.loads(x) for x in (out / "runs" / "lr0.002-b8-e6-s0" / "metrics.jsonl").read_text().splitlines()]
    assert sum(x["kind"] == "eval" for x in log) == 6 and any(x["kind"] == "train" for x in log)
    assert list((out / "runs" / "lr0.002-b8-e6-s0" / "tensorboard").iterdir())
    # the task checkpoint reproduces the test metrics and its predictions file
    assert evaluate(str(out), te, progress=False) == pytest.approx(r["test"])
    n = predict(str(out), te, str(tmp_path / "p.jsonl"), progress=False)
    again = read_predictions(str(tmp_path / "p.jsonl"))
    assert n == 12 and again == read_predictions(str(out / "predictions_test.jsonl"))
    acc = sum(p["label"] == p["gold"] for p in again) / n
    assert acc == pytest.approx(r["test"]["accuracy"])
    # unlabelled input: same predictions, no gold
    plain = tmp_path / "plain.tsv"
    plain.write_text("sentence\n" + "".join(x["text"] + "\n" for x in again), "utf-8")
    predict(str(out), str(plain), str(tmp_path / "p2.jsonl"), progress=False)
    unlabelled = read_predictions(str(tmp_path / "p2.jsonl"))
    assert [x["label"] for x in unlabelled] == [x["label"] for x in again] and "gold" not in unlabelled[0]
    # the task checkpoint is itself a valid init (a new head when the labels differ)
    three = write_tsv(
        tmp_path / "three.tsv",
        ["sentence", "label"],
        [(t, ["a", "b", "c"][i % 3]) for i, (t, _) in enumerate(sentiment_rows(12, 3))],
    )
    r3 = finetune(fast(task="classification", train=three, dev=three, init=str(out), epochs=1))
    assert "f1_macro" in r3["dev"]


def test_seeds_and_search_select_best_on_dev(init_dir, tmp_path):
    tr = write_tsv(tmp_path / "train.tsv", ["sentence", "label"], sentiment_rows(24, 0))
    dv = write_tsv(tmp_path / "dev.tsv", ["sentence", "label"], sentiment_rows(8, 1))
    r = finetune(
        fast(
            task="classification",
            train=tr,
            dev=dv,
            init=init_dir,
            out=None,
            seeds=2,
            search=True,
            search_lrs=(2e-3, 1e-5),
            search_batch_sizes=(8,),
            search_epochs=(1, 2),
        )
    )
    assert len(r["search"]) == 4 and len(r["runs"]) == 8
    assert [s["seed"] for s in r["dev"]["per_seed"]] == [0, 1] and "accuracy" in r["dev"]["std"]
    medians = [s["dev_accuracy_median"] for s in r["search"]]
    best = r["search"][medians.index(max(medians))]
    assert (r["selected"]["lr"], r["selected"]["epochs"]) == (best["lr"], best["epochs"])
    assert r["dev"]["accuracy"] == best["dev_accuracy_median"]
    assert "test" not in r


def test_pair_boolq_jsonl_and_random_init(init_dir, tmp_path):
    def rows(n, seed):
        rng = random.Random(seed)
        out = []
        for i in range(n):
            yes = i % 2 == 0
            q = "is the film good ?" if yes else "is the film bad ?"
            out.append(
                json.dumps({"question": q, "passage": f"the film {rng.choice(['is', 'was'])} good .", "label": yes})
            )
        return "\n".join(out) + "\n"

    (tmp_path / "train.jsonl").write_text(rows(32, 0))
    (tmp_path / "dev.jsonl").write_text(rows(8, 1))
    r = finetune(
        fast(
            task="pair",
            train=str(tmp_path / "train.jsonl"),
            dev=str(tmp_path / "dev.jsonl"),
            model_config={"preset": "tiny", "max_position_embeddings": 64},
            tokenizer=init_dir,
            out=str(tmp_path / "o"),
        )
    )
    assert loss_fell(r) and "f1" in r["dev"]
    assert json.loads((tmp_path / "o" / "task.json").read_text())["labels"] == ["false", "true"]


def test_regression_end_to_end(init_dir, tmp_path):
    rng = random.Random(0)

    def rows(n):
        out = []
        for _ in range(n):
            a, b = rng.choice(["good", "bad"]), rng.choice(["good", "bad"])
            out.append((f"the film is {a} .", f"the plot is {b} .", 4.5 if a == b else 0.5))
        return out

    tr = write_tsv(tmp_path / "train.tsv", ["sentence1", "sentence2", "score"], rows(40))
    dv = write_tsv(tmp_path / "dev.tsv", ["sentence1", "sentence2", "score"], rows(10))
    r = finetune(fast(task="regression", train=tr, dev=dv, test=dv, init=init_dir, out=str(tmp_path / "o")))
    assert loss_fell(r) and {"pearson", "spearman"} <= set(r["test"])
    assert json.loads((tmp_path / "o" / "config.json").read_text())["id2label"] == {"0": "LABEL_0"}
    assert evaluate(str(tmp_path / "o"), dv, progress=False) == pytest.approx(r["test"])
    # headerless files: training on pairs is saved, so an unlabelled 2-column file to predict is a
    # pair (it used to be read as text + score and fail on "the plot is good ." as a number)
    nh = [(a, b, s) for a, b, s in rows(40)]
    tr_nh = tmp_path / "train-nh.tsv"
    tr_nh.write_text("".join(f"{a}\t{b}\t{s}\n" for a, b, s in nh), "utf-8")
    out_nh = tmp_path / "o-nh"
    finetune(
        fast(
            task="regression",
            train=str(tr_nh),
            dev=str(tr_nh),
            init=init_dir,
            out=str(out_nh),
            epochs=1,
            task_settings={"header": False},
        )
    )
    unlabelled = tmp_path / "pairs-nh.tsv"
    unlabelled.write_text("".join(f"{a}\t{b}\n" for a, b, _ in nh[:5]), "utf-8")
    assert predict(str(out_nh), str(unlabelled), str(tmp_path / "p.jsonl"), progress=False) == 5
    got = read_predictions(str(tmp_path / "p.jsonl"))
    assert [(g["text"], g["text_pair"]) for g in got] == [(a, b) for a, b, _ in nh[:5]]
    assert json.loads((out_nh / "task.json").read_text())["settings"]["pair"] is True


def write_conll(path, sentences):
    path.write_text("\n".join("".join(f"{w}\t{t}\n" for w, t in s) for s in sentences), "utf-8")
    return str(path)


def ner_sentences(n, seed):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        who, where = rng.choice(["john", "mary"]), rng.choice(["paris", "rome"])
        out.append([(who, "B-person"), ("lives", "O"), ("in", "O"), (where, "B-geo-loc"), (".", "O")])
    return out


def test_tagging_end_to_end(init_dir, tmp_path):
    tr = write_conll(tmp_path / "train.conll", ner_sentences(32, 0))
    dv = write_conll(tmp_path / "dev.conll", ner_sentences(8, 1))
    r = finetune(fast(task="tagging", train=tr, dev=dv, test=dv, init=init_dir, out=str(tmp_path / "o")))
    assert loss_fell(r) and r["main_metric"] == "f1"
    assert r["dev"]["f1"] > 0.5 and {"precision", "recall", "accuracy"} <= set(r["test"])
    predict(str(tmp_path / "o"), dv, str(tmp_path / "p.jsonl"), progress=False)
    recs = read_predictions(str(tmp_path / "p.jsonl"))
    assert recs == read_predictions(str(tmp_path / "o" / "predictions_test.jsonl"))
    assert all(len(x["prediction"]) == len(x["tokens"]) for x in recs)


def squad_json(path, n, seed, version="v2.0"):
    rng = random.Random(seed)
    paras = []
    for i in range(n):
        who, where = rng.choice(["john", "mary"]), rng.choice(["paris", "rome"])
        ctx = f"today {who} lives in {where} and the dog sat on the mat ."
        qas = [
            {
                "id": f"q{i}a",
                "question": "who lives in " + where + " ?",
                "answers": [{"text": who, "answer_start": ctx.index(who)}],
                "is_impossible": False,
            },
            {"id": f"q{i}b", "question": "where is the cat ?", "answers": [], "is_impossible": True},
        ]
        paras.append({"context": ctx, "qas": qas})
    path.write_text(json.dumps({"version": version, "data": [{"title": "t", "paragraphs": paras}]}), "utf-8")
    return str(path)


def test_qa_end_to_end(init_dir, tmp_path):
    tr = squad_json(tmp_path / "train.json", 24, 0)
    dv = squad_json(tmp_path / "dev.json", 6, 1)
    r = finetune(
        fast(
            task="qa",
            train=tr,
            dev=dv,
            test=dv,
            init=init_dir,
            out=str(tmp_path / "o"),
            max_seq_length=32,
            task_settings={"doc_stride": 8},
        )
    )
    assert loss_fell(r)
    assert {"exact_match", "f1", "null_threshold", "HasAns_f1", "NoAns_f1"} <= set(r["test"])
    # spans are really found (a post-processing bug would leave only the no-answer questions right)
    assert r["dev"]["f1"] >= 60 and r["dev"]["HasAns_f1"] >= 50
    # evaluate uses the threshold tuned on dev and saved with the model
    saved = json.loads((tmp_path / "o" / "task.json").read_text())["settings"]
    assert saved["null_threshold"] == r["test"]["null_threshold"] and saved["version_2"] is True
    assert evaluate(str(tmp_path / "o"), dv, progress=False) == pytest.approx(r["test"])
    predict(str(tmp_path / "o"), dv, str(tmp_path / "p.jsonl"), progress=False)
    assert read_predictions(str(tmp_path / "p.jsonl")) == read_predictions(
        str(tmp_path / "o" / "predictions_test.jsonl")
    )
    # the official SQuAD format ({id: answer}, "" = no answer) beside the JSON lines, and from predict
    official = {r["id"]: r["prediction"] for r in read_predictions(str(tmp_path / "p.jsonl"))}
    assert json.loads((tmp_path / "o" / "predictions_test.json").read_text()) == official
    predict(str(tmp_path / "o"), dv, str(tmp_path / "p.json"), progress=False)
    assert json.loads((tmp_path / "p.json").read_text()) == official and len(official) == 12


def test_choice_end_to_end(init_dir, tmp_path):
    rng = random.Random(0)
    header = "video-id,fold-ind,startphrase,sent1,sent2,gold-source,ending0,ending1,ending2,ending3,label\n"

    def rows(n):
        lines = []
        for _ in range(n):
            gold = rng.randrange(4)
            ends = ["sleeps ." if k != gold else "eats ." for k in range(4)]
            lines.append(f"v,0,x,the man is very good .,he,gold,{','.join(ends)},{gold}\n")
        return header + "".join(lines)

    (tmp_path / "train.csv").write_text(rows(32))
    (tmp_path / "dev.csv").write_text(rows(8))
    r = finetune(
        fast(
            task="choice",
            train=str(tmp_path / "train.csv"),
            dev=str(tmp_path / "dev.csv"),
            init=init_dir,
            out=str(tmp_path / "o"),
        )
    )
    assert loss_fell(r) and 0.0 <= r["dev"]["accuracy"] <= 1.0


def test_cli_finetune_evaluate_predict_and_errors(init_dir, tmp_path, capsys):
    tr = write_tsv(tmp_path / "train.tsv", ["text", "y"], sentiment_rows(16, 0))
    dv = write_tsv(tmp_path / "dev.tsv", ["text", "y"], sentiment_rows(8, 1))
    out = tmp_path / "o"
    rc = main(
        [
            "finetune",
            "--task",
            "classification",
            "--train",
            tr,
            "--dev",
            dv,
            "--test",
            dv,
            "--init",
            init_dir,
            "--out",
            str(out),
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--label-column",
            "y",
            "--no-progress",
            "--device",
            "cpu",
            "--group-by-length",
        ]
    )
    assert rc == 0
    assert json.loads((out / "metrics.json").read_text())["config"]["group_by_length"] is True
    capsys.readouterr()
    assert main(["evaluate", "--model", str(out), "--data", dv, "--no-progress"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["test"] == pytest.approx(json.loads((out / "metrics.json").read_text())["test"])
    assert (
        main(["predict", "--model", str(out), "--data", dv, "--out", str(tmp_path / "p.jsonl"), "--no-progress"]) == 0
    )
    assert len(read_predictions(str(tmp_path / "p.jsonl"))) == 8
    # .json output is only for tasks with an official format; refused before predicting
    assert main(["predict", "--model", str(out), "--data", dv, "--out", str(tmp_path / "p.json"), "--no-progress"]) == 2
    assert "p.json: .json predictions are for tasks with an official format" in capsys.readouterr().err
    assert not (tmp_path / "p.json").exists()
    # files without a header line: the setting is saved with the model, so predict reads the same way
    for name in ("train", "dev"):
        lines = (tmp_path / f"{name}.tsv").read_text().splitlines()[1:]
        (tmp_path / f"{name}-nh.tsv").write_text("\n".join(lines) + "\n")
    out_nh = tmp_path / "o-nh"
    assert (
        main(
            [
                "finetune",
                "--task",
                "classification",
                "--train",
                str(tmp_path / "train-nh.tsv"),
                "--dev",
                str(tmp_path / "dev-nh.tsv"),
                "--init",
                init_dir,
                "--out",
                str(out_nh),
                "--epochs",
                "1",
                "--batch-size",
                "8",
                "--no-header",
                "--no-progress",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert (
        main(
            [
                "predict",
                "--model",
                str(out_nh),
                "--data",
                str(tmp_path / "dev-nh.tsv"),
                "--out",
                str(tmp_path / "p-nh.jsonl"),
                "--no-progress",
            ]
        )
        == 0
    )
    assert len(read_predictions(str(tmp_path / "p-nh.jsonl"))) == 8
    # a dev label the training file lacks
    bad = write_tsv(tmp_path / "bad.tsv", ["text", "y"], [("good", 1), ("odd", 7)])
    rc = main(
        [
            "finetune",
            "--task",
            "classification",
            "--train",
            tr,
            "--dev",
            bad,
            "--init",
            init_dir,
            "--out",
            str(tmp_path / "o2"),
            "--label-column",
            "y",
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "bad.tsv:3: label '7' does not occur in the training data" in err
    assert not (tmp_path / "o2").exists()
    # an option that does not apply to the task is refused, not ignored
    rc = main(
        [
            "finetune",
            "--task",
            "tagging",
            "--train",
            tr,
            "--dev",
            dv,
            "--init",
            init_dir,
            "--out",
            str(tmp_path / "o3"),
            "--text-column",
            "text",
        ]
    )
    assert rc == 2 and "do not apply" in capsys.readouterr().err


def test_cli_evaluate_similarity_from_embeddings(init_dir, tmp_path, capsys):
    """``evaluate --task similarity``: cosine of mean-pooled vectors of any checkpoint vs the file's
    scores. Identical texts have cosine 1, the most similar, so gold 5 / 0 for same / different
    texts must correlate positively; repeated texts are embedded once."""
    texts = ["the film is good .", "a dog sat on the mat", "mary lives in rome today", "he runs"]
    rows = [(a, b, 5.0 if a == b else 0.0) for a in texts for b in texts]
    f = write_tsv(tmp_path / "sts.tsv", ["sentence1", "sentence2", "score"], rows)
    assert (
        main(
            ["evaluate", "--model", init_dir, "--task", "similarity", "--data", f, "--batch-size", "3", "--no-progress"]
        )
        == 0
    )
    got = json.loads(capsys.readouterr().out)["test"]
    assert got["pairs"] == 16 and got["texts"] == 4
    assert got["pearson"] > 0.5 and got["spearman"] > 0.5


def test_truncation_is_counted_in_the_log(init_dir, tmp_path, capsys):
    rows = [(" ".join(["good"] * 40), 1), ("bad", 0)] * 4
    tr = write_tsv(tmp_path / "train.tsv", ["sentence", "label"], rows)
    finetune(fast(task="classification", train=tr, dev=tr, init=init_dir, epochs=1, max_seq_length=16))
    captured = capsys.readouterr()
    assert "train.tsv: 4 of 8 examples truncated (max_seq_length 16)" in captured.out + captured.err


def test_config_errors(init_dir, tmp_path):
    with pytest.raises(BertkitError, match="give --init DIR"):
        finetune(FinetuneConfig(task="classification", train="x", dev="y"))
    with pytest.raises(BertkitError, match="unknown task"):
        finetune(FinetuneConfig(task="ner", train="x", dev="y", init=init_dir))
    empty = write_tsv(tmp_path / "e.tsv", ["sentence", "label"], [])
    with pytest.raises(BertkitError, match="e.tsv: no examples"):
        finetune(fast(task="classification", train=empty, dev=empty, init=init_dir))


def test_init_from_a_pretraining_run_directory(init_dir, tmp_path):
    import shutil

    from bertkit.tasks.checkpoints import resolve_init

    run = tmp_path / "run"
    for step in (2, 10):
        ck = run / f"checkpoint-{step}"
        shutil.copytree(init_dir, ck)
        (ck / "trainer_state.pt").write_bytes(b"")
        (ck / "meta.json").write_text("{}")
    assert resolve_init(str(run)) == str(run / "checkpoint-10")
    assert resolve_init(init_dir) == init_dir
    with pytest.raises(BertkitError, match="neither a checkpoint"):
        resolve_init(str(tmp_path))


def test_epoch_loader_resumes_exactly():
    from bertkit.tasks.base import Features
    from bertkit.tasks.batching import EpochLoader

    feats = Features(
        [{"input_ids": [2, i, 3], "token_type_ids": [0, 0, 0], "labels": i % 2} for i in range(10)], list(range(10))
    )
    a = EpochLoader(feats, 4, 0, seed=3)
    it = iter(a)
    seen = [next(it)["input_ids"][:, 1].tolist() for _ in range(4)]  # crosses an epoch (3 batches each)
    state = a.state_dict()
    rest = [next(it)["input_ids"][:, 1].tolist() for _ in range(3)]
    b = EpochLoader(feats, 4, 0, seed=0)
    b.load_state_dict(state)
    it_b = iter(b)
    assert [next(it_b)["input_ids"][:, 1].tolist() for _ in range(3)] == rest
    assert sorted(x for batch in seen[:3] for x in batch) == list(range(10))  # one epoch = every item once


def test_cli_qa_options_and_unlabelled_predict(init_dir, tmp_path, capsys):
    tr = squad_json(tmp_path / "train.json", 8, 0)
    dv = squad_json(tmp_path / "dev.json", 3, 1)
    out = tmp_path / "qa"
    rc = main(
        [
            "finetune",
            "--task",
            "qa",
            "--train",
            tr,
            "--dev",
            dv,
            "--init",
            init_dir,
            "--out",
            str(out),
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--max-seq-length",
            "32",
            "--doc-stride",
            "8",
            "--max-query-length",
            "6",
            "--max-answer-length",
            "3",
            "--n-best",
            "5",
            "--no-progress",
            "--device",
            "cpu",
        ]
    )
    assert rc == 0
    settings = json.loads((out / "task.json").read_text())["settings"]
    assert (
        settings["doc_stride"],
        settings["max_query_length"],
        settings["max_answer_length"],
        settings["n_best"],
        settings["max_seq_length"],
    ) == (8, 6, 3, 5, 32)
    # questions without answers (a test set) can be predicted, each answer at most 3 pieces
    obj = json.loads(Path(dv).read_text())
    for para in obj["data"][0]["paragraphs"]:
        for qa in para["qas"]:
            qa.pop("answers"), qa.pop("is_impossible")
    (tmp_path / "q.json").write_text(json.dumps(obj))
    capsys.readouterr()
    assert (
        main(
            [
                "predict",
                "--model",
                str(out),
                "--data",
                str(tmp_path / "q.json"),
                "--out",
                str(tmp_path / "p.jsonl"),
                "--no-progress",
            ]
        )
        == 0
    )
    recs = read_predictions(str(tmp_path / "p.jsonl"))
    assert len(recs) == 6 and all("gold" not in r and len(r["best_span"].split()) <= 3 for r in recs)
    # QA options make no sense for a classification task: refused
    assert (
        main(
            [
                "finetune",
                "--task",
                "classification",
                "--train",
                tr,
                "--dev",
                dv,
                "--init",
                init_dir,
                "--out",
                str(tmp_path / "x"),
                "--doc-stride",
                "8",
            ]
        )
        == 2
    )
    assert "doc_stride" in capsys.readouterr().err


def test_same_seed_same_run(init_dir, tmp_path):
    tr = write_tsv(tmp_path / "train.tsv", ["sentence", "label"], sentiment_rows(16, 0))
    cfg = fast(task="classification", train=tr, dev=tr, init=init_dir, epochs=1, seed=5)
    a, b = finetune(cfg), finetune(cfg)
    assert a["runs"][0]["train_loss_last"] == b["runs"][0]["train_loss_last"]
    assert a["dev"]["per_seed"] == b["dev"]["per_seed"]
    c = finetune(fast(task="classification", train=tr, dev=tr, init=init_dir, epochs=1, seed=6))
    assert c["runs"][0]["train_loss_last"] != a["runs"][0]["train_loss_last"]


def test_epoch_loader_group_by_length(monkeypatch):
    """Batches of similar lengths (less padding), still every item once per epoch, reshuffled, resumable."""
    from bertkit.tasks.base import Features
    from bertkit.tasks.batching import EpochLoader

    rng = random.Random(0)
    lengths = [rng.randint(3, 60) for _ in range(90)]
    feats = Features(
        [{"input_ids": [i] * n, "token_type_ids": [0] * n, "labels": 0} for i, n in enumerate(lengths)], list(range(90))
    )
    monkeypatch.setattr(EpochLoader, "GROUP_BATCHES", 3)  # mega-batches of 24 items

    def epochs(loader, n_epochs):
        it = iter(loader)
        return [[next(it)["input_ids"] for _ in range(loader.steps_per_epoch)] for _ in range(n_epochs)]

    grouped = epochs(EpochLoader(feats, 8, 0, seed=1, group_by_length=True), 2)
    plain = epochs(EpochLoader(feats, 8, 0, seed=1), 1)
    for epoch in grouped:
        assert len(epoch) == 12 and sorted(int(b[r, 0]) for b in epoch for r in range(len(b))) == list(range(90))
    padded = lambda epoch: sum(b.numel() for b in epoch)  # noqa: E731
    assert padded(grouped[0]) < 0.8 * padded(plain[0])
    assert [b[:, 0].tolist() for b in grouped[0]] != [b[:, 0].tolist() for b in grouped[1]]
    # resume mid-epoch: the same batches follow
    a = EpochLoader(feats, 8, 0, seed=1, group_by_length=True)
    it = iter(a)
    for _ in range(5):
        next(it)
    b = EpochLoader(feats, 8, 0, seed=0, group_by_length=True)
    b.load_state_dict(a.state_dict())
    assert [next(iter(b))["input_ids"].tolist()] == [next(it)["input_ids"].tolist()]
