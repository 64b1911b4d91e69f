"""Model names on the Hugging Face Hub (``google-bert/bert-base-uncased``) -> local directories.

Everything that loads a checkpoint (``BertModel.from_pretrained``, ``Tokenizer.from_pretrained``,
``BertConfig.from_pretrained``, ``finetune --init``) passes its path through :func:`resolve`: an
existing local path is used as it is; any other string that reads as a Hub repository id is
looked up with ``huggingface_hub.snapshot_download`` in the Hugging Face cache (``HF_HUB_CACHE``,
else ``HF_HOME/hub``, else ``~/.cache/huggingface/hub``, read when called), downloading only
the files a BERT checkpoint needs unless ``HF_HUB_OFFLINE=1``.

``huggingface_hub`` is an optional dependency (``pip install bertkit[hub]``): bertkit's own
code never downloads models, and a local directory or a Google checkpoint needs nothing more.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from bertkit.errors import BertkitError

# What a BERT checkpoint directory needs; weights in safetensors form first.
_CONFIG_FILES = ["config.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"]
_SAFETENSORS = ["model.safetensors", "model.safetensors.index.json", "model-*-of-*.safetensors"]
_PYTORCH = ["pytorch_model.bin"]

# owner/name or a bare legacy name: letters, digits, '-', '_', '.'; no leading '.', no '..'.
_REPO_ID = re.compile(r"^(?!\.)[A-Za-z0-9_.-]{1,96}(/(?!\.)[A-Za-z0-9_.-]{1,96})?$")
_TRUE = {"1", "on", "yes", "true"}


def looks_like_repo_id(name: str) -> bool:
    return bool(_REPO_ID.match(name)) and ".." not in name and not name.endswith((".json", ".txt"))


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache as the environment says now."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "huggingface" / "hub"


def is_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def resolve(path: str | os.PathLike) -> Path:
    """A local path as it is, or the local snapshot directory of Hub repository ``path``."""
    p = Path(path)
    local = p.exists() or Path(f"{p}.index").exists()  # a directory, a file, a TF checkpoint prefix
    if local or isinstance(path, Path) or not looks_like_repo_id(str(path)):
        return p
    return snapshot(str(path))


def _has_weights(d: Path) -> bool:
    return any((d / n).is_file() for n in ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin"))


def snapshot(repo_id: str) -> Path:
    """The cached (or, when online, downloaded) snapshot directory of ``repo_id``."""
    try:
        import huggingface_hub
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError:
        raise BertkitError(
            f"{repo_id}: no such local directory; to load it from the Hugging Face Hub, "
            "pip install huggingface_hub (or bertkit[hub])"
        ) from None
    offline = is_offline()
    cache = hub_cache_dir()
    try:
        d = Path(
            huggingface_hub.snapshot_download(
                repo_id,
                cache_dir=cache,
                local_files_only=offline,
                allow_patterns=_CONFIG_FILES + _SAFETENSORS,
            )
        )
        if not _has_weights(d):  # an older repository: weights only as pytorch_model.bin
            d = Path(
                huggingface_hub.snapshot_download(
                    repo_id, cache_dir=cache, local_files_only=offline, allow_patterns=_CONFIG_FILES + _PYTORCH
                )
            )
    except LocalEntryNotFoundError:
        if offline:
            raise BertkitError(
                f"{repo_id}: no such local directory, and not in the Hugging Face cache {cache} "
                f"(HF_HUB_OFFLINE is set); fetch it once online with `hf download {repo_id}` "
                "or unset HF_HUB_OFFLINE"
            ) from None
        raise BertkitError(
            f"{repo_id}: no such local directory, and the Hugging Face Hub cannot be reached (not cached in {cache})"
        ) from None
    except Exception as e:  # RepositoryNotFoundError, HTTP and connection errors
        raise BertkitError(
            f"{repo_id}: no such local directory, and not loadable from the Hugging Face Hub: "
            f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        ) from None
    if not (d / "config.json").is_file():
        raise BertkitError(f"{repo_id}: the Hub snapshot {d} has no config.json (not a transformers BERT model?)")
    return d
