"""BertConfig: presets, HF config.json round trip, labels, refused architectures."""

from __future__ import annotations

import json

import pytest

from bertkit.config import PRESETS, BertConfig
from bertkit.errors import BertkitError


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_follow_the_rules(name):
    cfg = BertConfig.from_preset(name)
    layers, hidden, heads = PRESETS[name]
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads) == (layers, hidden, heads)
    assert cfg.hidden_size // cfg.num_attention_heads == 64
    assert cfg.intermediate_size == 4 * cfg.hidden_size
    assert cfg.vocab_size == 30522


def test_preset_values():
    assert PRESETS["base"] == (12, 768, 12) and PRESETS["large"] == (24, 1024, 16)
    assert BertConfig.from_preset("tiny", vocab_size=1000).vocab_size == 1000


def test_unknown_preset_and_bad_values():
    with pytest.raises(BertkitError, match="unknown model preset 'huge'"):
        BertConfig.from_preset("huge")
    with pytest.raises(BertkitError, match="not a multiple"):
        BertConfig.from_preset("tiny", num_attention_heads=3)
    with pytest.raises(BertkitError, match="hidden_act"):
        BertConfig.from_preset("tiny", hidden_act="swish")


def test_num_labels_derived():
    cfg = BertConfig()
    assert cfg.num_labels == 2 and cfg.id2label == {}
    cfg.num_labels = 3
    assert cfg.id2label == {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}
    assert cfg.label2id["LABEL_2"] == 2
    cfg.set_labels(["neg", "pos"])
    assert cfg.num_labels == 2 and cfg.label2id == {"neg": 0, "pos": 1}
    assert BertConfig.from_preset("tiny", num_labels=1).num_labels == 1


def test_save_and_load_hf_style(tmp_path):
    cfg = BertConfig.from_preset("mini", id2label={0: "O", 1: "B-PER"})
    cfg.save(tmp_path, architectures=["BertForTokenClassification"])
    raw = json.loads((tmp_path / "config.json").read_text())
    assert raw["model_type"] == "bert"
    assert raw["architectures"] == ["BertForTokenClassification"]
    assert raw["id2label"] == {"0": "O", "1": "B-PER"}  # string keys, as HF writes them
    back = BertConfig.from_pretrained(tmp_path)
    assert back == cfg and back.id2label[1] == "B-PER"


def test_unknown_keys_tolerated_and_refused_architectures(tmp_path):
    d = BertConfig.from_preset("tiny").to_dict()
    d.update(
        architectures=["BertModel"],
        transformers_version="4.8.2",
        use_cache=True,
        gradient_checkpointing=False,
        _name_or_path="x",
    )
    (tmp_path / "config.json").write_text(json.dumps(d))
    assert BertConfig.from_pretrained(tmp_path).hidden_size == 128
    d["position_embedding_type"] = "relative_key"
    (tmp_path / "config.json").write_text(json.dumps(d))
    with pytest.raises(BertkitError, match="position_embedding_type"):
        BertConfig.from_pretrained(tmp_path)


def test_missing_and_broken_config(tmp_path):
    with pytest.raises(BertkitError, match="no such"):
        BertConfig.from_pretrained(tmp_path / "nope")
    (tmp_path / "config.json").write_text("{\n  \"hidden_size\": 12,\n oops")
    with pytest.raises(BertkitError, match=r"config.json:3: invalid JSON"):
        BertConfig.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(BertkitError, match="not a BERT model"):
        BertConfig.from_pretrained(tmp_path)


def test_real_checkpoint_config(minilm_dir):
    cfg = BertConfig.from_pretrained(minilm_dir)
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads) == (6, 384, 12)
    assert cfg.intermediate_size == 1536 and cfg.layer_norm_eps == 1e-12
