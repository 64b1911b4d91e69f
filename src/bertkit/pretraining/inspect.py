"""``bertkit prepare --inspect``: a readable summary of prepared data."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from bertkit.fileio import read_json
from bertkit.pretraining.format import IGNORE_INDEX, MANIFEST, InspectOptions
from bertkit.pretraining.loader import PretrainingLoader
from bertkit.tokenization import Tokenizer


def inspect(data_dir: str | os.PathLike, n: int = InspectOptions.n, split: str = InspectOptions.split) -> str:
    """A readable summary of prepared data: manifest facts and ``n`` decoded instances
    (tokens with masked positions as ``[MASK:label]``-style marks, segments, NSP label)."""
    data_dir = Path(data_dir)
    manifest = read_json(data_dir / MANIFEST)
    summary = {k: v for k, v in manifest.items() if k not in ("splits", "inputs", "options")}
    summary["options"] = manifest["options"]
    summary["inputs"] = [i["path"] for i in manifest["inputs"]]
    summary["splits"] = {
        s: {"num_instances": v["num_instances"], "shards": len(v["shards"])} for s, v in manifest["splits"].items()
    }
    lines = [json.dumps(summary, indent=2, ensure_ascii=False)]
    tok = Tokenizer.from_pretrained(data_dir)
    loader = PretrainingLoader(data_dir, split=split, batch_size=1, shuffle=False)
    count = min(n, loader.num_instances)
    if count == 0:
        return "\n".join(lines)
    batch = loader.make_batch(np.arange(count), 0)
    docs = loader._gather(np.arange(count))["docs"]
    for i in range(count):
        length = int(batch["attention_mask"][i].sum())
        ids = batch["input_ids"][i, :length].tolist()
        types = batch["token_type_ids"][i, :length].tolist()
        toks = tok.convert_ids_to_tokens(ids)
        labels = {
            int(p): int(l)
            for p, l in zip(batch["masked_positions"][i].tolist(), batch["mlm_labels"][i].tolist())
            if l != IGNORE_INDEX
        }
        shown = []
        for j, t in enumerate(toks):
            if j in labels:
                t = f"{t}<{tok.convert_ids_to_tokens([labels[j]])[0]}>"
            shown.append(t)
        head = f"--- {split} instance {i}: {length} tokens, segment B starts at {types.index(1) if 1 in types else '-'}"
        if "nsp_labels" in batch:
            nsp = int(batch["nsp_labels"][i])
            head += f", NSP label {nsp} ({'random next' if nsp else 'actual next'})"
        head += f", documents {int(docs[i, 0])}/{int(docs[i, 1])}, {len(labels)} masked"
        lines.append(head)
        lines.append(" ".join(shown))
    lines.append("(masked positions shown as TOKEN<label>)")
    return "\n".join(lines)
