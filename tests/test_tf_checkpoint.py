"""Google TensorFlow checkpoints without TensorFlow: the bundle reader on bundles written by
the test helpers (dtypes, shards, blocks), the Google -> bertkit name map, casing, one-line
errors for bad input, and the real TF-written fixture through every entry point."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import require_shared
from tf_bundle_helpers import (
    TINY_CONFIG,
    VOCAB,
    bfloat16,
    entry_proto,
    google_weights,
    write_bundle,
    write_google_checkpoint,
    write_table,
)

from bertkit import BertForPreTraining, BertModel
from bertkit.cli import main
from bertkit.errors import BertkitError
from bertkit.protowire import crc32c, mask_crc
from bertkit.tf_checkpoint import TFCheckpoint, detect_casing, find_prefix, load_bert_state_dict, read_table
from bertkit.tokenization import Tokenizer

pytestmark = pytest.mark.usefixtures("one_thread")


# --------------------------------------------------------------------------- the reader
def test_crc32c_and_mask_match_known_values():
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    assert crc32c(b"") == 0
    # LevelDB's mask: rotate right 15, add 0xa282ead8
    assert mask_crc(0) == 0xA282EAD8
    assert mask_crc(0x12345678) == ((((0x12345678 >> 15) | (0x12345678 << 17)) & 0xFFFFFFFF) + 0xA282EAD8) % 2**32


def test_bundle_round_trip_every_dtype_several_shards_and_blocks(tmp_path):
    rng = np.random.default_rng(0)
    f32 = rng.normal(size=(5, 7)).astype(np.float32)
    tensors = {
        "a/float32": f32,
        "a/float16": rng.normal(size=(3, 4)).astype(np.float16),
        "a/float64": rng.normal(size=(2,)),
        "b/int64": np.array(123456789012, dtype=np.int64),
        "b/int32": np.arange(-3, 9, dtype=np.int32).reshape(3, 4),
        "c/bfloat16": bfloat16(f32),
        "c/empty": np.zeros((0, 3), np.float32),
    }
    # many similar names: prefix-compressed keys over several blocks and restart points
    tensors.update({f"d/layer_{i}/some/long/variable/name": np.full((2,), i, np.float32) for i in range(60)})
    write_bundle(tmp_path / "m.ckpt", tensors, num_shards=3, block_size=256, restart_interval=4)
    assert len(list(tmp_path.glob("m.ckpt.data-*-of-00003"))) == 3
    b = TFCheckpoint(tmp_path / "m.ckpt")
    assert b.num_shards == 3 and len(b.entries) == len(tensors)
    assert {e.shard_id for e in b.entries.values()} == {0, 1, 2}
    for name, want in tensors.items():
        got = b.read(name)
        if name == "c/bfloat16":
            assert got.dtype == np.float32 and np.abs(got - f32).max() <= np.abs(f32).max() * 2**-7
            assert np.array_equal(got.view(np.uint32) & 0xFFFF, np.zeros(f32.shape, np.uint32))
        else:
            assert got.dtype == want.dtype and got.shape == want.shape and np.array_equal(got, want), name
            assert got.flags.writeable
    assert np.array_equal(b.read("a/float32", transpose=True), f32.T)
    assert b.read("a/float32", transpose=True).flags.c_contiguous
    assert np.array_equal(b.read("c/bfloat16", transpose=True), b.read("c/bfloat16").T)
    # several blocks were written (the index block lists more than one handle)
    keys = [k for k, _ in read_table(tmp_path / "m.ckpt.index")]
    assert keys == sorted(keys) and len(keys) == len(tensors) + 1


def test_google_names_map_to_bertkit_names(tmp_path):
    weights = write_google_checkpoint(tmp_path / "ckpt")
    sd, report = load_bert_state_dict(tmp_path / "ckpt")
    assert report.skipped_training_state == 1 + 2 * len(weights) and report.unknown == []
    q = weights["bert/encoder/layer_1/attention/self/query/kernel"]
    assert np.array_equal(sd["bert.encoder.layer.1.attention.self.query.weight"], q.T)  # [in, out] -> [out, in]
    nsp = weights["cls/seq_relationship/output_weights"]
    assert np.array_equal(sd["cls.seq_relationship.weight"], nsp)  # [2, H]: not transposed
    assert np.array_equal(sd["cls.predictions.bias"], weights["cls/predictions/output_bias"])
    assert np.array_equal(sd["bert.embeddings.LayerNorm.weight"], weights["bert/embeddings/LayerNorm/gamma"])
    # every tensor of BertForPreTraining comes from the checkpoint
    m = BertForPreTraining.from_pretrained(tmp_path / "ckpt")
    assert not m.loading_info
    own = m.state_dict()
    assert set(own) == set(sd)
    for k, v in sd.items():
        assert torch.equal(own[k], torch.from_numpy(v)), k
    # the MLM decoder is the word-embedding table
    we = weights["bert/embeddings/word_embeddings"]
    assert np.array_equal(m.bert.embeddings.word_embeddings.weight.detach().numpy(), we)


def test_checkpoint_prefix_choice(tmp_path, monkeypatch):
    d = tmp_path / "ckpt"
    write_google_checkpoint(d, prefix="model.ckpt-1000")  # any single *.index prefix
    assert find_prefix(d) == d / "model.ckpt-1000"
    assert BertModel.from_pretrained(d).config.hidden_size == TINY_CONFIG["hidden_size"]
    for p in d.glob("model.ckpt-1000.*"):
        shutil.copy(p, d / p.name.replace("1000", "2000"))
    with pytest.raises(BertkitError, match="several TensorFlow checkpoints"):
        find_prefix(d)
    (d / "checkpoint").write_text('model_checkpoint_path: "model.ckpt-2000"\n')
    assert find_prefix(d) == d / "model.ckpt-2000"
    write_google_checkpoint(d)  # bert_model.ckpt wins when present
    assert find_prefix(d) == d / "bert_model.ckpt"
    # a prefix (what google-research/bert's --init_checkpoint takes) is pointed to its directory,
    # as a relative path too (never taken for a Hub name)
    monkeypatch.chdir(tmp_path)
    for given in (d / "bert_model.ckpt", "ckpt/bert_model.ckpt"):
        with pytest.raises(
            BertkitError, match=r"ckpt/bert_model.ckpt: a TensorFlow checkpoint prefix; pass its directory"
        ):
            BertModel.from_pretrained(given)


def test_fp16_bf16_checkpoints_and_sharded_ones(tmp_path):
    w = google_weights(TINY_CONFIG, seed=1)
    half = {k: v.astype(np.float16) for k, v in w.items()}
    write_google_checkpoint(tmp_path / "h", weights=half, num_shards=2)
    m = BertModel.from_pretrained(tmp_path / "h")
    got = m.embeddings.word_embeddings.weight.detach().numpy()
    assert np.array_equal(got, half["bert/embeddings/word_embeddings"].astype(np.float32))
    write_google_checkpoint(tmp_path / "b", weights={k: bfloat16(v) for k, v in w.items()}, optimizer_slots=False)
    m = BertModel.from_pretrained(tmp_path / "b")
    got = m.embeddings.word_embeddings.weight.detach().numpy()
    want = w["bert/embeddings/word_embeddings"]
    assert np.abs(got - want).max() <= np.abs(want).max() * 2**-7


def test_encoder_only_checkpoint_converts_to_bert_model(tmp_path, capsys):
    w = {k: v for k, v in google_weights(TINY_CONFIG).items() if not k.startswith("cls/")}
    write_google_checkpoint(tmp_path / "enc", weights=w)
    assert main(["convert", "--from-tf", str(tmp_path / "enc"), "--out", str(tmp_path / "out"), "--uncased"]) == 0
    assert json.loads((tmp_path / "out" / "config.json").read_text())["architectures"] == ["BertModel"]
    assert "encoder + pooler" in capsys.readouterr().out


# --------------------------------------------------------------------------- casing
def test_casing_from_flag_directory_name_then_vocabulary(tmp_path, capsys):
    cased_vocab = VOCAB + ["The", "Paris", "John", "the"]
    write_google_checkpoint(tmp_path / "cased_L-2_H-16_A-2", vocab=VOCAB)
    write_google_checkpoint(tmp_path / "uncased_L-2_H-16_A-2", vocab=cased_vocab)
    write_google_checkpoint(tmp_path / "mybert", vocab=cased_vocab)
    write_google_checkpoint(tmp_path / "otherbert", vocab=VOCAB)
    assert detect_casing(tmp_path / "cased_L-2_H-16_A-2") == (False, "directory name 'cased_L-2_H-16_A-2' says cased")
    assert detect_casing(tmp_path / "uncased_L-2_H-16_A-2")[0] is True  # the name wins over the vocabulary
    lower, how = detect_casing(tmp_path / "mybert")
    assert lower is False and "3 upper-case word pieces" in how
    assert detect_casing(tmp_path / "otherbert")[0] is True
    # the tokenizer of a TF directory follows the detection, and says so
    assert Tokenizer.from_pretrained(tmp_path / "mybert").do_lower_case is False
    assert Tokenizer.from_pretrained(tmp_path / "cased_L-2_H-16_A-2").tokenize("The") == ["[UNK]"]
    # the flag overrides both
    out = tmp_path / "conv"
    assert main(["convert", "--from-tf", str(tmp_path / "mybert"), "--out", str(out), "--uncased"]) == 0
    assert json.loads((out / "tokenizer_config.json").read_text())["do_lower_case"] is True
    assert "uncased" in capsys.readouterr().out


# --------------------------------------------------------------------------- bad input
def _drop(name):
    def make(d):
        w = google_weights(TINY_CONFIG)
        del w[name]
        write_google_checkpoint(d, weights=w)

    return make


def _shape(d):
    w = google_weights({**TINY_CONFIG, "intermediate_size": 48})
    write_google_checkpoint(d, weights=w)  # bert_config.json says 32


def _extra_layer(d):
    w = google_weights({**TINY_CONFIG, "num_hidden_layers": 3})
    write_google_checkpoint(d, weights=w)


def _dtype(kind):
    def make(d):
        w = google_weights(TINY_CONFIG)
        w["bert/pooler/dense/bias"] = (kind, (16,), b"\0" * 16)
        write_google_checkpoint(d, weights=w)

    return make


def _unknown_enum(d):
    write_google_checkpoint(d)
    entries = [(k, bytes(v)) for k, v in read_table(d / "bert_model.ckpt.index")]
    name = b"bert/pooler/dense/bias"
    entries = [(k, entry_proto(99, (16,), 0, 0, 64, 0) if k == name else v) for k, v in entries]
    write_table(d / "bert_model.ckpt.index", entries)


def _flip(offset: int, bit: int):
    def edit(raw: bytearray) -> bytes:
        raw[offset] ^= bit
        return bytes(raw)

    return edit


def _damage(filename: str, edit, **write_options):
    """A checkpoint whose ``filename`` is passed through ``edit(bytearray) -> bytes``."""

    def make(d):
        write_google_checkpoint(d, **write_options)
        path = d / filename
        path.write_bytes(edit(bytearray(path.read_bytes())))

    return make


DATA, INDEX = "bert_model.ckpt.data-00000-of-00001", "bert_model.ckpt.index"
_truncate_data = _damage(DATA, lambda raw: bytes(raw[:-100]), optimizer_slots=False)
_flip_data = _damage(DATA, _flip(40, 0x01), optimizer_slots=False)
_flip_index = _damage(INDEX, _flip(30, 0x20))
_truncate_index = _damage(INDEX, lambda raw: bytes(raw[:-10]))


def _missing_shard(d):
    write_google_checkpoint(d, num_shards=2)
    (d / "bert_model.ckpt.data-00001-of-00002").unlink()


def _no_checkpoint(d):
    d.mkdir()
    (d / "vocab.txt").write_text("".join(t + "\n" for t in VOCAB))


def _no_config(d):
    write_google_checkpoint(d)
    (d / "bert_config.json").unlink()


def _rewrite_index(d, **table_options):
    entries = [(k, bytes(v)) for k, v in read_table(d / "bert_model.ckpt.index")]
    write_table(d / "bert_model.ckpt.index", entries, **table_options)


def _snappy(d):
    write_google_checkpoint(d)
    _rewrite_index(d, block_type=1)  # data blocks marked snappy-compressed


BAD = {
    "truncated data": (_truncate_data, r"bert_model\.ckpt\.data-00000-of-00001: truncated: variable '"),
    "checksum mismatch": (_flip_data, r"data-00000-of-00001: checksum mismatch for variable 'bert/"),
    "shape vs config": (
        _shape,
        r"variable 'bert/encoder/layer_0/intermediate/dense/bias' has shape \[48\] but bert_config.json "
        r"\(hidden_size=16, intermediate_size=32\) gives \[32\]",
    ),
    "more layers than config": (
        _extra_layer,
        r"'bert/encoder/layer_2/.*' but bert_config.json says num_hidden_layers=2",
    ),
    "missing variable": (
        _drop("bert/encoder/layer_1/output/dense/kernel"),
        r"missing variable 'bert/encoder/layer_1/output/dense/kernel'",
    ),
    "TF2 object graph": (
        lambda d: write_google_checkpoint(
            d,
            weights={
                "_CHECKPOINTABLE_OBJECT_GRAPH": ("string", (), b""),
                "model/encoder/.ATTRIBUTES/VARIABLE_VALUE": np.zeros(3, np.float32),
            },
        ),
        r"a TF2 object-based checkpoint .* missing variable 'bert/embeddings/",
    ),
    "string dtype": (
        _dtype("string"),
        r"variable 'bert/pooler/dense/bias' has dtype string, which bertkit cannot read",
    ),
    "unknown dtype": (_unknown_enum, r"'bert/pooler/dense/bias' has dtype DataType 99, which bertkit cannot read"),
    "corrupt index": (_flip_index, r"bert_model\.ckpt\.index: checksum mismatch in the block at byte 0"),
    "truncated index": (_truncate_index, r"bert_model\.ckpt\.index: not a TensorFlow checkpoint index"),
    "snappy block": (_snappy, r"is snappy-compressed; only uncompressed tables"),
    "missing shard": (_missing_shard, r"data-00001-of-00002: no such file \(shard 1 of"),
    "not a checkpoint": (_no_checkpoint, r"not a checkpoint directory.*no config.json, no TensorFlow \*\.index file"),
    "no bert_config.json": (_no_config, r"bert_config.json: no such file"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_clear_line(case, tmp_path, capsys):
    make, pattern = BAD[case]
    d = tmp_path / "ckpt"
    make(d)
    with pytest.raises(BertkitError, match=pattern):
        BertForPreTraining.from_pretrained(d)
    capsys.readouterr()
    assert main(["convert", "--from-tf", str(d), "--out", str(tmp_path / "out"), "--uncased"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("bertkit convert: error: ")
    assert not (tmp_path / "out").exists()


def test_convert_output_guard(tmp_path, capsys):
    write_google_checkpoint(tmp_path / "ckpt")
    args = ["convert", "--from-tf", str(tmp_path / "ckpt"), "--uncased", "--out"]
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    for flags in ([], ["--overwrite"]):  # never replaces what bertkit did not write
        assert main([*args, str(foreign), *flags]) == 2
        assert "was not written by bertkit convert" in capsys.readouterr().err
        assert [p.name for p in foreign.iterdir()] == ["keep.txt"]
    out = tmp_path / "out"
    assert main([*args, str(out)]) == 0
    first = (out / "model.safetensors").read_bytes()
    assert main([*args, str(out)]) == 2  # an earlier conversion: only with --overwrite
    assert "already holds bertkit convert output; pass --overwrite" in capsys.readouterr().err
    assert main([*args, str(out), "--gelu", "tanh", "--overwrite"]) == 0
    assert json.loads((out / "config.json").read_text())["hidden_act"] == "gelu_new"
    assert (out / "model.safetensors").read_bytes() == first
    assert main([*args, str(tmp_path / "ckpt"), "--overwrite"]) == 2  # never onto its own input
    assert "--out" in capsys.readouterr().err
    assert not (tmp_path / "ckpt" / "config.json").exists()


# --------------------------------------------------------------------------- the real fixture
def _fixture() -> Path:
    return require_shared("checkpoints", "google-tiny-tf")


def _batches(expected):
    for p in ("", "rand_"):
        yield p, {k: torch.tensor(expected[p + k]) for k in ("input_ids", "attention_mask", "token_type_ids")}


def _assert_close_on_real_tokens(expected, prefix, got: dict, tol=1e-5):
    real = expected[prefix + "attention_mask"].astype(bool)
    for key, value in got.items():
        want = expected[prefix + key]
        diff = np.abs(value - want)
        diff = diff[real] if key in ("last_hidden_state", "mlm_logits") else diff
        assert diff.max() <= tol, (prefix, key, diff.max())


def _pretraining_outputs(model, batch):
    with torch.no_grad():
        hidden, pooled = model.bert(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        out = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    return {
        "last_hidden_state": hidden.numpy(),
        "pooler_output": pooled.numpy(),
        "mlm_logits": out.mlm_logits.numpy(),
        "nsp_logits": out.nsp_logits.numpy(),
    }


def test_fixture_matches_transformers_through_from_pretrained():
    d = _fixture()
    expected = np.load(d / "expected.npz")
    pre = BertForPreTraining.from_pretrained(d)
    enc = BertModel.from_pretrained(str(d))
    assert not pre.loading_info and pre.config.hidden_act == "gelu"
    for prefix, batch in _batches(expected):
        _assert_close_on_real_tokens(expected, prefix, _pretraining_outputs(pre, batch))
        with torch.no_grad():
            hidden, pooled = enc(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        _assert_close_on_real_tokens(
            expected, prefix, {"last_hidden_state": hidden.numpy(), "pooler_output": pooled.numpy()}
        )


def test_fixture_converted_loads_in_transformers_with_identical_outputs(tmp_path, caplog):
    transformers = pytest.importorskip("transformers")
    d = _fixture()
    expected = np.load(d / "expected.npz")
    out = tmp_path / "converted"
    assert main(["convert", "--from-tf", str(d), "--out", str(out)]) == 0
    assert "treating the vocabulary as uncased (vocabulary has 0 upper-case" in caplog.text
    assert {p.name for p in out.iterdir()} == {
        "config.json",
        "model.safetensors",
        "vocab.txt",
        "tokenizer_config.json",
        ".bertkit.json",  # the output guard's marker: bertkit wrote this directory
    }
    hf = transformers.BertForPreTraining.from_pretrained(out).eval()
    ours = BertForPreTraining.from_pretrained(out)
    direct = BertForPreTraining.from_pretrained(d)
    for prefix, batch in _batches(expected):
        with torch.no_grad():
            h = hf(**batch, output_hidden_states=True)
        _assert_close_on_real_tokens(
            expected,
            prefix,
            {
                "last_hidden_state": h.hidden_states[-1].numpy(),
                "mlm_logits": h.prediction_logits.numpy(),
                "nsp_logits": h.seq_relationship_logits.numpy(),
            },
        )
        a, b = _pretraining_outputs(ours, batch), _pretraining_outputs(direct, batch)
        for k in a:  # same weights, same code: identical
            assert np.array_equal(a[k], b[k]), k
    tok = transformers.BertTokenizer.from_pretrained(out)
    assert tok.do_lower_case is True and len(tok) == 1000


def test_fixture_tanh_gelu_option(tmp_path):
    transformers = pytest.importorskip("transformers")
    d = _fixture()
    expected = np.load(d / "expected.npz")
    out = tmp_path / "tanh"
    assert main(["convert", "--from-tf", str(d), "--out", str(out), "--gelu", "tanh", "--uncased"]) == 0
    assert json.loads((out / "config.json").read_text())["hidden_act"] == "gelu_new"
    tanh = BertForPreTraining.from_pretrained(d, hidden_act="gelu_new")
    hf = transformers.BertForPreTraining.from_pretrained(out).eval()
    _, batch = next(_batches(expected))
    ours = _pretraining_outputs(tanh, batch)
    with torch.no_grad():
        theirs = hf(**batch).prediction_logits.numpy()
    real = expected["attention_mask"].astype(bool)
    assert np.abs(ours["mlm_logits"] - theirs)[real].max() <= 1e-5
    # the tanh form is a (small, here ~1e-5) departure from the erf oracle, not the same numbers
    assert np.abs(ours["last_hidden_state"] - expected["last_hidden_state"])[real].max() > 1e-7


def test_fixture_finetune_init_from_the_tf_directory(tmp_path):
    from bertkit.finetune import FinetuneConfig, finetune

    d = _fixture()
    rows = "".join(f"{w} {w}\t{i % 2}\n" for i, w in enumerate(["!"] * 16))
    (tmp_path / "t.tsv").write_text("sentence\tlabel\n" + rows)
    cfg = FinetuneConfig(
        task="classification",
        train=str(tmp_path / "t.tsv"),
        dev=str(tmp_path / "t.tsv"),
        init=str(d),
        out=str(tmp_path / "out"),
        epochs=1,
        batch_size=8,
        progress=False,
        device="cpu",
    )
    finetune(cfg)
    out = tmp_path / "out"
    saved = BertModel.from_pretrained(out)
    assert saved.config.vocab_size == 1000
    assert json.loads((out / "tokenizer_config.json").read_text())["do_lower_case"] is True


def test_large_reads_show_a_progress_bar(tmp_path, capsys, monkeypatch):
    import bertkit.tf_checkpoint as tfc

    write_google_checkpoint(tmp_path / "ckpt")
    load_bert_state_dict(tmp_path / "ckpt")
    assert "reading TF checkpoint" not in capsys.readouterr().err  # small: no bar
    monkeypatch.setattr(tfc, "_PROGRESS_BYTES", 0)
    load_bert_state_dict(tmp_path / "ckpt")
    assert "reading TF checkpoint" in capsys.readouterr().err


def test_fixture_through_bertkit_load():
    import bertkit

    d = _fixture()
    m = bertkit.load(str(d), device="cpu")
    assert "fill_mask" in m.capabilities
    filled = m.fill_mask(["! [MASK] !"], top_k=3)[0]
    assert len(filled["masks"][0]) == 3
    # [CLS] embeddings = the directly loaded encoder's (whose parity with transformers is tested above)
    tok = Tokenizer.from_pretrained(d)
    texts = ["! ! !", "!"]
    emb = m.embed(texts, pooling="cls")
    enc = BertModel.from_pretrained(d)
    for text, row in zip(texts, emb):
        ids = torch.tensor([tok.encode(text).input_ids])
        with torch.no_grad():
            want = enc(ids).last_hidden_state[0, 0].numpy()
        assert np.abs(row - want).max() <= 1e-5
