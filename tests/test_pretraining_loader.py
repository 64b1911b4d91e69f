"""PretrainingLoader: the batch contract, rank slices, dynamic masking, exact resume; the CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pretraining_helpers import make_documents, write_bert_format, write_vocab

from bertkit.cli import main
from bertkit.errors import BertkitError
from bertkit.pretraining.format import PrepareOptions
from bertkit.pretraining.loader import PretrainingLoader
from bertkit.pretraining.prepare import prepare

T = 64


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("loader")
    corpus = write_bert_format(tmp / "c.txt", make_documents(300, seed=2))
    vocab = write_vocab(tmp / "vocab")
    out = {"tmp": tmp, "corpus": corpus, "vocab": vocab}
    for name, opts in {
        "static": PrepareOptions(max_seq_length=T, dupe_factor=2, shard_instances=300, validation_fraction=0.1),
        "dynamic": PrepareOptions(
            max_seq_length=T, dupe_factor=2, masking="dynamic", shard_instances=300, whole_word_mask=True
        ),
        "mlm": PrepareOptions(max_seq_length=T, dupe_factor=1, masking="dynamic", nsp=False),
    }.items():
        prepare([corpus], vocab, tmp / name, opts, workers=1, progress=False)
        out[name] = tmp / name
    return out


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("kind", ["static", "dynamic"])
def test_batch_contract(data, kind):
    loader = PretrainingLoader(data[kind], split="train", batch_size=16, seed=0)
    assert len(loader.manifest["splits"]["train"]["shards"]) > 1  # batches gather across shards
    b = next(iter(loader))
    assert set(b) == {"input_ids", "token_type_ids", "attention_mask", "masked_positions", "mlm_labels", "nsp_labels"}
    for k in ("input_ids", "token_type_ids", "attention_mask"):
        assert b[k].shape == (16, T) and b[k].dtype == torch.long
    p = loader.manifest["max_predictions_per_seq"]
    assert b["masked_positions"].shape == (16, p) and b["mlm_labels"].shape == (16, p)
    assert b["nsp_labels"].shape == (16,) and b["nsp_labels"].dtype == torch.long
    pad = b["masked_positions"] == 0
    assert (b["mlm_labels"][pad] == -100).all() and (b["mlm_labels"][~pad] >= 5).all()
    # masked positions hold [MASK] mostly; token types are 0 then 1 then 0 on padding
    at = torch.gather(b["input_ids"], 1, b["masked_positions"])[~pad]
    assert (at == 4).float().mean() > 0.6
    assert (b["token_type_ids"] <= b["attention_mask"]).all()
    assert ((b["input_ids"] == 0) == (b["attention_mask"] == 0)).all()


def test_mlm_only_batches_have_no_nsp(data):
    b = next(iter(PretrainingLoader(data["mlm"], batch_size=8)))
    assert "nsp_labels" not in b and (b["token_type_ids"] == 0).all()


def test_ranks_get_disjoint_slices_covering_the_epoch(data):
    world = 3
    loaders = [PretrainingLoader(data["static"], batch_size=8, rank=r, world_size=world, seed=1) for r in range(world)]
    n = loaders[0].batches_per_epoch
    assert all(len(lo) == n for lo in loaders)
    seen = [np.concatenate([lo.batch_indices(0, b) for b in range(n)]) for lo in loaders]
    allidx = np.concatenate(seen)
    assert len(np.unique(allidx)) == len(allidx) == world * n * 8
    assert len(allidx) > loaders[0].num_instances - world * 8  # only the remainder is dropped


def test_endless_with_a_new_order_each_epoch(data):
    loader = PretrainingLoader(data["static"], batch_size=32, seed=0)
    n = loader.batches_per_epoch
    assert not np.array_equal(loader.batch_indices(0, 0), loader.batch_indices(1, 0))
    it = iter(loader)
    for _ in range(n + 2):
        next(it)
    assert loader.state_dict()["epoch"] == 1 and loader.state_dict()["batch"] == 2


def test_dynamic_masks_change_per_epoch_and_are_reproducible(data):
    loader = PretrainingLoader(data["dynamic"], batch_size=16, seed=4)
    idx = np.arange(16)
    e0, e0b, e1 = loader.make_batch(idx, 0), loader.make_batch(idx, 0), loader.make_batch(idx, 1)
    assert same(e0, e0b)
    assert not torch.equal(e0["masked_positions"], e1["masked_positions"])
    # the unmasked text is the same: undo the masks and compare
    for b in (e0, e1):
        ids = b["input_ids"].clone()
        m = b["masked_positions"] > 0
        rows = torch.nonzero(m)[:, 0]
        ids[rows, b["masked_positions"][m]] = b["mlm_labels"][m]
        b["orig"] = ids
    assert torch.equal(e0["orig"], e1["orig"])
    # an instance's masks do not depend on the batch it sits in
    alone = loader.make_batch(idx[5:6], 0)
    assert torch.equal(alone["masked_positions"][0], e0["masked_positions"][5])


def test_dynamic_mask_rate_override(data):
    loader = PretrainingLoader(data["dynamic"], batch_size=64, mask_prob=0.3)
    assert loader.max_predictions == 20  # ceil(64 * 0.3)
    b = loader.make_batch(np.arange(256), 0)
    frac = (b["masked_positions"] > 0).sum() / b["attention_mask"].sum()
    assert 0.27 < float(frac) < 0.31
    with pytest.raises(BertkitError, match="statically masked"):
        PretrainingLoader(data["static"], mask_prob=0.3)


def test_resume_is_exact(data):
    a = PretrainingLoader(data["dynamic"], batch_size=8, seed=9)
    n = a.batches_per_epoch
    it = iter(a)
    for _ in range(n - 2):  # resume across an epoch boundary
        next(it)
    state = a.state_dict()
    expected = [next(it) for _ in range(5)]
    b = PretrainingLoader(data["dynamic"], batch_size=8, seed=9)
    b.load_state_dict(state)
    got = [x for _, x in zip(range(5), b)]
    assert all(same(x, y) for x, y in zip(expected, got))
    with pytest.raises(BertkitError, match="batch_size"):
        PretrainingLoader(data["dynamic"], batch_size=4, seed=9).load_state_dict(state)


def test_one_pass_covers_the_split_once(data):
    loader = PretrainingLoader(data["static"], split="validation", batch_size=4)
    total = sum(len(b["input_ids"]) for b in loader.one_pass())
    assert total == loader.num_instances > 0


def test_loader_errors(data, tmp_path):
    with pytest.raises(BertkitError, match="manifest.json: no such file"):
        PretrainingLoader(tmp_path)
    with pytest.raises(BertkitError, match="too few"):
        next(iter(PretrainingLoader(data["static"], split="validation", batch_size=10_000)))
    with pytest.raises(BertkitError, match="rank"):
        PretrainingLoader(data["static"], rank=2, world_size=2)


def test_cli_prepare_and_inspect(data, tmp_path, capsys):
    out = tmp_path / "cli"
    args = [
        "prepare",
        "--input",
        str(data["corpus"]),
        "--tokenizer",
        str(data["vocab"]),
        "--out",
        str(out),
        "--max-seq-length",
        "64",
        "--dupe-factor",
        "1",
        "--workers",
        "1",
        "--quiet",
        "--seed",
        "3",
    ]
    assert main(args) == 0
    assert "train +" in capsys.readouterr().out
    assert main(args) == 0
    assert "up to date" in capsys.readouterr().out
    assert main(["prepare", "--inspect", str(out), "-n", "2"]) == 0
    text = capsys.readouterr().out
    assert '"vocab_sha256"' in text and text.count("--- train instance") == 2 and "NSP label" in text
    assert "[CLS]" in text and "[MASK]<" in text
    assert main(["prepare", "--input", str(data["corpus"])]) == 2
    assert "--tokenizer, --out required" in capsys.readouterr().err
