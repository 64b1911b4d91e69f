"""Checkpoint directories: round trips, HF name variants, reports, refusals, bad files."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
from safetensors.torch import load_file, save_file

from bertkit import (
    BertConfig,
    BertForMultipleChoice,
    BertForPreTraining,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertkitError,
    BertModel,
)

V = 90
ALL = [
    BertModel,
    BertForPreTraining,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertForQuestionAnswering,
    BertForMultipleChoice,
]


def tiny(**kw) -> BertConfig:
    return BertConfig.from_preset("tiny", vocab_size=V, max_position_embeddings=32, **kw)


def ids(B=2, T=9):
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(1))


def same_state(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_round_trip_every_class(cls, tmp_path):
    torch.manual_seed(0)
    m = cls(tiny(num_labels=3))
    m.save_pretrained(tmp_path / "ck")
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["config.json", "model.safetensors"]
    cfg = json.loads((tmp_path / "ck" / "config.json").read_text())
    assert cfg["architectures"] == [cls.__name__] and cfg["model_type"] == "bert"
    back = cls.from_pretrained(tmp_path / "ck")
    assert not back.loading_info and not back.training
    assert same_state(m, back) and back.config == m.config


def test_hf_tensor_names_and_tied_decoder_saved(tmp_path):
    BertForPreTraining(tiny()).save_pretrained(tmp_path)
    sd = load_file(tmp_path / "model.safetensors")
    assert "bert.encoder.layer.0.attention.self.query.weight" in sd
    assert "cls.predictions.transform.LayerNorm.weight" in sd
    assert torch.equal(sd["cls.predictions.decoder.weight"], sd["bert.embeddings.word_embeddings.weight"])


def test_encoder_checkpoint_into_head_model_initialises_heads(tmp_path, caplog):
    torch.manual_seed(0)
    enc = BertModel(tiny())
    enc.save_pretrained(tmp_path)  # names without the bert. prefix
    with caplog.at_level("WARNING", logger="bertkit"):
        m = BertForPreTraining.from_pretrained(tmp_path)
    assert set(m.loading_info.missing) == {
        "cls.predictions.bias",
        "cls.predictions.transform.dense.weight",
        "cls.predictions.transform.dense.bias",
        "cls.predictions.transform.LayerNorm.weight",
        "cls.predictions.transform.LayerNorm.bias",
        "cls.seq_relationship.weight",
        "cls.seq_relationship.bias",
    }
    assert "missing (initialised): cls." in caplog.text
    assert same_state(enc, m.bert)


def test_head_checkpoint_into_encoder_and_other_head(tmp_path):
    torch.manual_seed(0)
    pt = BertForPreTraining(tiny())
    pt.save_pretrained(tmp_path)
    enc = BertModel.from_pretrained(tmp_path)  # strips bert., ignores cls.*
    assert same_state(pt.bert, enc)
    assert "cls.seq_relationship.weight" in enc.loading_info.unexpected
    tok = BertForTokenClassification.from_pretrained(tmp_path, num_labels=4)
    assert tok.config.num_labels == 4 and tok.classifier.out_features == 4
    assert set(tok.loading_info.missing) == {"classifier.weight", "classifier.bias"}
    assert "bert.pooler.dense.weight" in tok.loading_info.unexpected
    assert torch.equal(tok.bert.encoder.layer[1].output.dense.weight, pt.bert.encoder.layer[1].output.dense.weight)


def test_mismatched_sizes_refused_unless_opted_in(tmp_path):
    BertForSequenceClassification(tiny(num_labels=3)).save_pretrained(tmp_path)
    with pytest.raises(BertkitError, match=r"classifier.weight \[3, 128\] in file vs \[5, 128\]"):
        BertForSequenceClassification.from_pretrained(tmp_path, num_labels=5)
    m = BertForSequenceClassification.from_pretrained(tmp_path, num_labels=5, ignore_mismatched_sizes=True)
    assert m.classifier.out_features == 5
    assert "classifier.weight" in m.loading_info.missing
    shapes = {k: (a, b) for k, a, b in m.loading_info.mismatched}
    assert shapes["classifier.weight"] == ((3, 128), (5, 128))


def test_mismatched_encoder_always_refused(tmp_path):
    BertModel(tiny()).save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["vocab_size"] = V + 10  # config.json and weights disagree
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(BertkitError, match="encoder tensors do not fit.*word_embeddings"):
        BertModel.from_pretrained(tmp_path, ignore_mismatched_sizes=True)


def test_labels_survive_round_trip(tmp_path):
    cfg = tiny(id2label={0: "neg", 1: "neu", 2: "pos"})
    BertForSequenceClassification(cfg).save_pretrained(tmp_path)
    back = BertForSequenceClassification.from_pretrained(tmp_path)
    assert back.config.id2label == {0: "neg", 1: "neu", 2: "pos"}
    assert back.config.label2id["pos"] == 2


def test_missing_encoder_tensor_refused(tmp_path):
    BertModel(tiny()).save_pretrained(tmp_path)
    sd = load_file(tmp_path / "model.safetensors")
    del sd["encoder.layer.1.attention.self.key.weight"]
    save_file(sd, tmp_path / "model.safetensors")
    with pytest.raises(BertkitError, match="not a complete BERT checkpoint.*layer.1.attention.self.key"):
        BertModel.from_pretrained(tmp_path)


def test_truncated_and_corrupt_safetensors(tmp_path):
    BertModel(tiny()).save_pretrained(tmp_path)
    f = tmp_path / "model.safetensors"
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    with pytest.raises(BertkitError, match="model.safetensors: cannot read safetensors"):
        BertModel.from_pretrained(tmp_path)
    f.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(BertkitError, match="truncated or corrupt"):
        BertModel.from_pretrained(tmp_path)


def test_missing_directory_and_weights(tmp_path):
    with pytest.raises(BertkitError, match="no such checkpoint directory"):
        BertModel.from_pretrained(tmp_path / "absent")
    tiny().save(tmp_path)
    with pytest.raises(BertkitError, match="no model.safetensors or pytorch_model.bin"):
        BertModel.from_pretrained(tmp_path)
    (tmp_path / "config.json").unlink()
    with pytest.raises(BertkitError, match="config.json: no such file"):
        BertModel.from_pretrained(tmp_path)


def test_pytorch_model_bin_with_old_names(tmp_path):
    """HF's older format, with TF-converted gamma/beta LayerNorm names and a decoder bias."""
    torch.manual_seed(0)
    ref = BertForPreTraining(tiny())
    sd = {}
    for k, v in ref.state_dict().items():
        k = k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
        sd[k.replace("cls.predictions.bias", "cls.predictions.decoder.bias")] = v.clone()
    sd["cls.predictions.decoder.weight"] = sd["bert.embeddings.word_embeddings.weight"].clone()
    sd["bert.embeddings.position_ids"] = torch.arange(32)[None]
    tiny().save(tmp_path)
    torch.save(sd, tmp_path / "pytorch_model.bin")
    m = BertForPreTraining.from_pretrained(tmp_path)
    assert not m.loading_info
    assert same_state(ref, m)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pytorch_model_bin_is_loaded_safely(tmp_path, capsys):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    tiny().save(tmp_path)
    (tmp_path / "pytorch_model.bin").write_bytes(pickle.dumps({"x": Evil()}))
    with pytest.raises(BertkitError, match="pytorch_model.bin: cannot read PyTorch checkpoint safely"):
        BertModel.from_pretrained(tmp_path)
    assert "pwned" not in capsys.readouterr().out


def test_save_is_atomic_and_replaces(tmp_path):
    target = tmp_path / "ck"
    BertModel(tiny()).save_pretrained(target)
    (target / "stale.txt").write_text("old")

    class BadTokenizer:
        def save(self, d):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        BertModel(tiny()).save_pretrained(target, tokenizer=BadTokenizer())
    assert (target / "stale.txt").exists()  # the old directory is untouched by a failed save
    assert [p.name for p in tmp_path.iterdir()] == ["ck"]  # no temp dir left behind
    BertModel(tiny()).save_pretrained(target)
    assert not (target / "stale.txt").exists()


def test_tokenizer_saved_with_model(tmp_path):
    class Tok:
        def save(self, d):
            (d / "vocab.txt").write_text("[PAD]\n[UNK]\n")
            (d / "tokenizer_config.json").write_text("{}")

    BertModel(tiny()).save_pretrained(tmp_path / "ck", tokenizer=Tok())
    assert (tmp_path / "ck" / "vocab.txt").read_text() == "[PAD]\n[UNK]\n"
    assert BertModel.from_pretrained(tmp_path / "ck").config.vocab_size == V


def test_config_overrides_on_load(tmp_path):
    BertModel(tiny()).save_pretrained(tmp_path)
    m = BertModel.from_pretrained(tmp_path, hidden_dropout_prob=0.0)
    assert m.config.hidden_dropout_prob == 0.0 and m.embeddings.dropout.p == 0.0
    with pytest.raises(BertkitError, match="unknown config key.*num_lables"):
        BertModel.from_pretrained(tmp_path, num_lables=3)


def test_real_checkpoint_loads_clean(minilm_dir):
    m = BertModel.from_pretrained(minilm_dir)
    assert not m.loading_info  # position_ids buffer tolerated silently
    assert sum(p.numel() for p in m.parameters()) == 22_713_216
    out = m(ids(T=5) + 1000)
    assert out.last_hidden_state.shape == (2, 5, 384)


def test_saved_files_get_the_umask_mode(tmp_path):
    """safetensors 0.8 writes model.safetensors through a 0600 temp file: a saved model was
    unreadable to the group and others while config.json beside it was not (failed before)."""
    import os

    old = os.umask(0o022)
    try:
        BertModel(tiny()).save_pretrained(tmp_path / "ck")
    finally:
        os.umask(old)
    for name in ("config.json", "model.safetensors"):
        assert (tmp_path / "ck" / name).stat().st_mode & 0o777 == 0o644, name
