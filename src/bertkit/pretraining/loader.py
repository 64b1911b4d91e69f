"""Batches of pre-training instances from a directory written by ``bertkit prepare``.

The shards are memory-mapped; nothing is read before it is needed. Each epoch visits the
instances in a fresh permutation (``seed``, epoch) cut into global batches of
``batch_size * world_size``; rank ``r`` takes the ``r``-th slice of every global batch, so
ranks see disjoint data and the same number of batches. With dynamic masking the masks of an
instance are a pure function of ``(seed, epoch, instance index)``: they differ from epoch to
epoch, and they are the same whatever the batch size, rank or resume point.
:meth:`PretrainingLoader.state_dict` is a handful of integers; resuming regenerates the epoch's
permutation and jumps straight to the saved batch, without reading the batches before it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from bertkit.errors import BertkitError
from bertkit.fileio import read_json
from bertkit.pretraining.format import CONTINUATION_FILE, FORMAT_NAME, IGNORE_INDEX, MANIFEST, VocabInfo
from bertkit.pretraining.masking import hash64, instance_keys, mask_tokens


class PretrainingLoader:
    """Endless iterator of batch dicts of torch tensors over one split of prepared data.

    Batch keys: ``input_ids``, ``token_type_ids``, ``attention_mask`` (B, T) long;
    ``masked_positions`` (B, P) long, 0-padded; ``mlm_labels`` (B, P) long, -100 at padding;
    ``nsp_labels`` (B,) long (only when the data has NSP). ``T`` is the manifest's
    ``max_seq_length`` and ``P`` its ``max_predictions_per_seq`` (or ``max_predictions``).

    ``mask_prob`` / ``max_predictions`` override the manifest's masking rate for dynamically
    masked data (an error for statically masked data, whose masks are fixed in the shards).
    """

    def __init__(
        self,
        data_dir: str | os.PathLike,
        split: str = "train",
        batch_size: int = 32,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        *,
        shuffle: bool = True,
        mask_prob: float | None = None,
        max_predictions: int | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        manifest_path = self.data_dir / MANIFEST
        if not manifest_path.is_file():
            raise BertkitError(f"{manifest_path}: no such file (prepare the data with `bertkit prepare`)")
        self.manifest = read_json(manifest_path)
        if self.manifest.get("format") != FORMAT_NAME:
            raise BertkitError(f"{manifest_path}: not a bertkit pre-training data manifest")
        if split not in self.manifest["splits"]:
            raise BertkitError(f"{manifest_path}: no split {split!r} (have {', '.join(self.manifest['splits'])})")
        if not (0 <= rank < world_size):
            raise BertkitError(f"rank {rank} out of range for world_size {world_size}")
        if batch_size < 1:
            raise BertkitError(f"batch_size must be >= 1, got {batch_size}")
        self.split, self.batch_size, self.rank, self.world_size, self.seed = split, batch_size, rank, world_size, seed
        self.shuffle = shuffle
        self.dynamic = self.manifest["masking"] == "dynamic"
        if not self.dynamic and (mask_prob is not None or max_predictions is not None):
            raise BertkitError(
                f"{manifest_path}: data is statically masked; mask_prob/max_predictions "
                "can only be changed for data prepared with --masking dynamic"
            )
        self.mask_prob = float(mask_prob if mask_prob is not None else self.manifest["mask_prob"])
        if max_predictions is None:
            max_predictions = (
                self.manifest["max_predictions_per_seq"]
                if mask_prob is None
                else int(np.ceil(self.manifest["max_seq_length"] * self.mask_prob - 1e-9))
            )
        self.max_predictions = int(max_predictions)
        self.nsp = bool(self.manifest["nsp"])
        self._shards = self._open_shards()
        counts = np.array([s["num_instances"] for s in self.manifest["splits"][split]["shards"]], dtype=np.int64)
        self._offsets = np.concatenate([[0], np.cumsum(counts)])  # shard k holds [off[k], off[k+1])
        self.num_instances = int(self._offsets[-1])
        # the epoch permutation is the loader's one O(N) structure: 4 bytes per instance
        self._index_dtype = np.int32 if self.num_instances < 2**31 else np.int64
        per_rank = self.num_instances // world_size
        self.batches_per_epoch = per_rank // batch_size  # may be 0: then only one_pass() works
        self._vocab = self._vocab_info() if self.dynamic else None
        self.epoch = 0
        self.batch = 0  # next batch within the epoch
        self._perm_epoch = -1
        self._perm: np.ndarray | None = None

    # -- setup ---------------------------------------------------------------------------------

    def _open_shards(self) -> list[dict[str, np.ndarray]]:
        shards = []
        for entry in self.manifest["splits"][self.split]["shards"]:
            arrays = {}
            for key, fname in entry["files"].items():
                path = self.data_dir / fname
                if not path.is_file():
                    raise BertkitError(f"{path}: shard file listed in {MANIFEST} is missing")
                arrays[key] = np.load(path, mmap_mode="r")
            shards.append(arrays)
        return shards

    def _vocab_info(self) -> VocabInfo:
        sp = self.manifest["special_ids"]
        cont_path = self.data_dir / CONTINUATION_FILE
        if self.manifest["whole_word_mask"]:
            continuation = np.load(cont_path)
        else:
            continuation = np.zeros(self.manifest["vocab_size"], dtype=bool)
        return VocabInfo(
            self.manifest["vocab_size"], sp["pad"], sp["unk"], sp["cls"], sp["sep"], sp["mask"], continuation
        )

    # -- order ---------------------------------------------------------------------------------

    def __len__(self) -> int:
        """Batches per epoch for this rank."""
        return self.batches_per_epoch

    def _permutation(self, epoch: int) -> np.ndarray:
        if self._perm_epoch != epoch:
            if self.shuffle:
                rng = np.random.default_rng(hash64(self.seed, "epoch-order", epoch))
                self._perm = rng.permutation(self.num_instances).astype(self._index_dtype)
            else:
                self._perm = np.arange(self.num_instances, dtype=self._index_dtype)
            self._perm_epoch = epoch
        assert self._perm is not None
        return self._perm

    def batch_indices(self, epoch: int, batch: int) -> np.ndarray:
        """Global instance indices of this rank's ``batch``-th batch of ``epoch``."""
        perm = self._permutation(epoch)
        start = (batch * self.world_size + self.rank) * self.batch_size
        return perm[start : start + self.batch_size]

    # -- reading -------------------------------------------------------------------------------

    def _gather(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """Rows ``indices`` (global) of every shard field, in the given order."""
        shard_of = np.searchsorted(self._offsets, indices, side="right") - 1
        out: dict[str, np.ndarray] = {}
        for k in np.unique(shard_of):
            sel = np.nonzero(shard_of == k)[0]
            rows = indices[sel] - self._offsets[k]
            order = np.argsort(rows)  # read the memory map front to back
            for key, arr in self._shards[k].items():
                if key not in out:
                    out[key] = np.empty((len(indices),) + arr.shape[1:], dtype=arr.dtype)
                out[key][sel[order]] = arr[rows[order]]
        return out

    def make_batch(self, indices: np.ndarray, epoch: int) -> dict[str, torch.Tensor]:
        """The batch dict for global instance ``indices`` (masks drawn for ``epoch`` if dynamic)."""
        indices = np.asarray(indices, dtype=np.int64)
        a = self._gather(indices)
        ids = a["input_ids"]
        lengths = a["lengths"].astype(np.int64)  # (B, 2): length of [CLS] A [SEP], total length
        t = ids.shape[1]
        pos = np.arange(t)[None, :]
        attention = pos < lengths[:, 1:2]  # (B, T)
        types = (pos >= lengths[:, 0:1]) & attention  # (B, T)
        if self.dynamic:
            assert self._vocab is not None
            keys = instance_keys(hash64(self.seed, "dynamic-mask", epoch), indices)
            ids, positions, labels = mask_tokens(
                ids,
                lengths[:, 1],
                self._vocab,
                keys=keys,
                mask_prob=self.mask_prob,
                max_predictions=self.max_predictions,
                whole_word=bool(self.manifest["whole_word_mask"]),
            )
        else:
            positions = a["masked_positions"].astype(np.int64)
            labels = np.where(positions > 0, a["masked_labels"].astype(np.int64), IGNORE_INDEX)
        batch = {
            "input_ids": torch.from_numpy(ids.astype(np.int64)),
            "token_type_ids": torch.from_numpy(types.astype(np.int64)),
            "attention_mask": torch.from_numpy(attention.astype(np.int64)),
            "masked_positions": torch.from_numpy(positions),
            "mlm_labels": torch.from_numpy(labels),
        }
        if self.nsp:
            batch["nsp_labels"] = torch.from_numpy(a["nsp_labels"].astype(np.int64))
        return batch

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        """Endless: epoch after epoch from the current position; the position advances as
        batches are yielded, so :meth:`state_dict` always names the next batch."""
        if self.batches_per_epoch == 0:
            raise BertkitError(
                f"{self.data_dir / MANIFEST}: split {self.split!r} has {self.num_instances} "
                f"instances, too few for batch_size {self.batch_size} x world_size {self.world_size}"
            )
        while True:
            while self.batch < self.batches_per_epoch:
                epoch, batch = self.epoch, self.batch
                out = self.make_batch(self.batch_indices(epoch, batch), epoch)
                self.batch += 1
                yield out
            self.epoch += 1
            self.batch = 0

    def one_pass(self) -> Iterator[dict[str, torch.Tensor]]:
        """One unshuffled pass over this rank's share (last batch may be short), for
        evaluation; masks are those of epoch 0. Does not move the training position."""
        share = np.arange(self.rank, self.num_instances, self.world_size)
        for start in range(0, len(share), self.batch_size):
            yield self.make_batch(share[start : start + self.batch_size], 0)

    # -- resume --------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {
            "epoch": self.epoch,
            "batch": self.batch,
            "seed": self.seed,
            "split": self.split,
            "batch_size": self.batch_size,
            "world_size": self.world_size,
            "num_instances": self.num_instances,
            "data_key": self.manifest.get("key"),
        }

    def load_state_dict(self, state: dict) -> None:
        """Resume at the saved position; the data, batch size and world size must be the same."""
        for name in ("seed", "split", "batch_size", "world_size", "num_instances"):
            if state.get(name) != getattr(self, name):
                raise BertkitError(
                    f"cannot resume data position: saved {name}={state.get(name)!r}, loader has {getattr(self, name)!r}"
                )
        if state.get("data_key") != self.manifest.get("key"):
            raise BertkitError(
                f"cannot resume data position: {self.data_dir} holds different data than the run that saved it"
            )
        self.epoch, self.batch = int(state["epoch"]), int(state["batch"])
