"""Hugging Face Hub names, resolved through a Hugging Face cache laid out by the test (offline:
nothing here reaches the network)."""

from __future__ import annotations

import sys

import pytest
import torch

from bertkit import BertConfig, BertForPreTraining, BertModel
from bertkit.errors import BertkitError
from bertkit.hub import looks_like_repo_id, resolve
from bertkit.tasks.checkpoints import resolve_init
from bertkit.tokenization import Tokenizer

pytest.importorskip("huggingface_hub")

REPO = "google-bert/bert-base-uncased"
COMMIT = "86b5e0934494bd15c9632b12f734a8a67f723594"
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world"]


def tiny() -> BertConfig:
    return BertConfig.from_preset(
        "tiny", vocab_size=len(VOCAB), hidden_size=16, intermediate_size=32, max_position_embeddings=16
    )


def lay_out_cache(hf_home, repo=REPO, bin_only=False):
    """The Hugging Face cache layout: models--OWNER--NAME/{refs/main, snapshots/COMMIT/...}."""
    root = hf_home / "hub" / ("models--" + repo.replace("/", "--"))
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(COMMIT)
    torch.manual_seed(0)
    model = BertForPreTraining(tiny())
    snap = root / "snapshots" / COMMIT
    model.save_pretrained(snap, tokenizer=Tokenizer(VOCAB))
    if bin_only:
        torch.save(model.state_dict(), snap / "pytorch_model.bin")
        (snap / "model.safetensors").unlink()
    return model, snap


@pytest.fixture
def offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)  # no local directory of the repository's name
    return tmp_path / "hf"


@pytest.mark.parametrize("bin_only", [False, True])
def test_hub_name_loads_from_the_cache(offline, bin_only):
    ref, snap = lay_out_cache(offline, bin_only=bin_only)
    m = BertForPreTraining.from_pretrained(REPO)
    assert not m.loading_info
    for (k, a), b in zip(ref.state_dict().items(), m.state_dict().values()):
        assert torch.equal(a, b), k
    assert BertModel.from_pretrained(REPO).config.hidden_size == 16
    assert BertConfig.from_pretrained(REPO).vocab_size == len(VOCAB)
    assert Tokenizer.from_pretrained(REPO).tokenize("Hello world") == ["hello", "world"]
    assert resolve_init(REPO) == str(snap)
    import bertkit

    assert "fill_mask" in bertkit.load(REPO, device="cpu").capabilities


def test_hub_cache_env_is_read_when_called(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))  # HF_HUB_CACHE wins over HF_HOME
    monkeypatch.chdir(tmp_path)
    _, snap = lay_out_cache(tmp_path / "hf")
    assert resolve(REPO) == snap


def test_offline_and_not_cached_is_one_clear_line(offline):
    with pytest.raises(BertkitError) as e:
        BertModel.from_pretrained(REPO)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(f"{REPO}: no such local directory, and not in the Hugging Face cache {offline / 'hub'}")
    assert f"hf download {REPO}" in msg and "HF_HUB_OFFLINE" in msg


def test_without_huggingface_hub_the_message_says_what_to_install(offline, monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(BertkitError, match="pip install huggingface_hub"):
        Tokenizer.from_pretrained(REPO)


def test_local_paths_win_and_paths_are_not_repo_ids(offline):
    local = offline.parent / "google-bert" / "bert-base-uncased"
    ref, _ = lay_out_cache(offline)
    BertModel(tiny()).save_pretrained(local)
    assert resolve(REPO) == local.relative_to(offline.parent)  # the local directory, not the cache
    for name in ("/abs/path", "./rel", "a/b/c", "../up", "model.json"):
        assert not looks_like_repo_id(name), name
    for name in (REPO, "bert-base-uncased", "dslim/bert-base-NER"):
        assert looks_like_repo_id(name), name


@pytest.mark.parametrize(
    "error, message",
    [
        ("local", "no such local directory, and the Hugging Face Hub cannot be reached (not cached in"),
        ("other", "no such local directory, and not loadable from the Hugging Face Hub: ValueError: repo gone"),
    ],
)
def test_online_failures_are_one_line(tmp_path, monkeypatch, error, message):
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    calls = []

    def fake_snapshot_download(repo_id, **kw):  # stands in for the network
        calls.append(kw)
        if error == "local":
            raise LocalEntryNotFoundError("connection error")
        raise ValueError("repo gone\nsecond line")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    with pytest.raises(BertkitError) as e:
        BertModel.from_pretrained(REPO)
    assert message in str(e.value) and "\n" not in str(e.value)
    assert calls[0]["local_files_only"] is False and "model.safetensors" in calls[0]["allow_patterns"]
