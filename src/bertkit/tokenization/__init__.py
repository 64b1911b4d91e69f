"""WordPiece tokenization: BERT-exact encoding and vocabulary training.

``Tokenizer`` encodes text exactly as the original BERT does (ids identical to transformers'
slow ``BertTokenizer``), with offsets into the original text; ``train_vocab`` learns a new
WordPiece vocabulary from a corpus.
"""

from bertkit.tokenization.encoding import Encoding
from bertkit.tokenization.tokenizer import (
    CONFIG_FILE,
    PRESERVE_HANGUL_KANA_KEY,
    VOCAB_FILE,
    Tokenizer,
    read_vocab,
)
from bertkit.tokenization.vocab_training import VocabReport, evaluate_vocab, iter_texts, train_vocab

__all__ = [
    "Tokenizer",
    "Encoding",
    "read_vocab",
    "train_vocab",
    "evaluate_vocab",
    "iter_texts",
    "VocabReport",
    "VOCAB_FILE",
    "CONFIG_FILE",
    "PRESERVE_HANGUL_KANA_KEY",
]
