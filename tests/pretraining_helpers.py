"""A hand-made WordPiece vocabulary and a synthetic corpus for the data-preparation tests.

Every word of the corpus is in the vocabulary either whole or as ``stem ##suffix`` pieces, so
nothing becomes ``[UNK]``, whole-word masking has multi-piece words to work on, and every
sentence is known exactly (to check that instances decode back to their source sentences).
"""

from __future__ import annotations

import random
from pathlib import Path

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = (
    "the a cat dog bird fish tree house river stone cloud road king queen child song light "
    "night day green red blue old new small big quick slow happy sad under over near far "
    "and or but with from into eat see find give take make"
).split()
STEMS = ["run", "jump", "play", "walk", "talk", "paint", "climb", "sing"]
SUFFIXES = ["##ing", "##ed", "##s", "##er"]
SUFFIX_TEXT = [s[2:] for s in SUFFIXES]


def write_vocab(directory: Path) -> Path:
    """Write ``vocab.txt`` (+ a lower-casing ``tokenizer_config.json``) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    tokens = SPECIALS + WORDS + STEMS + SUFFIXES + [".", ",", "!", "?"]
    (directory / "vocab.txt").write_text("".join(t + "\n" for t in tokens), encoding="utf-8")
    (directory / "tokenizer_config.json").write_text('{"do_lower_case": true}\n', encoding="utf-8")
    return directory


def make_documents(
    n_docs: int, seed: int = 0, min_sents: int = 2, max_sents: int = 12, min_words: int = 4, max_words: int = 16
) -> list[list[str]]:
    """Random documents: lists of sentences like ``"the cat running over the road ."``."""
    rng = random.Random(seed)
    docs = []
    for _ in range(n_docs):
        sents = []
        for _ in range(rng.randint(min_sents, max_sents)):
            words = []
            for _ in range(rng.randint(min_words, max_words)):
                if rng.random() < 0.25:
                    words.append(rng.choice(STEMS) + rng.choice(SUFFIX_TEXT))
                else:
                    words.append(rng.choice(WORDS))
            sents.append(" ".join(words) + " " + rng.choice([".", "!", "?"]))
        docs.append(sents)
    return docs


def write_bert_format(path: Path, docs: list[list[str]]) -> Path:
    """One sentence per line, a blank line between documents."""
    path.write_text("\n\n".join("\n".join(d) for d in docs) + "\n", encoding="utf-8")
    return path
