"""bertkit.probe: the linear probe the quickstart reports (frozen features -> logistic regression)."""

from __future__ import annotations

import numpy as np
import torch

from bertkit.config import BertConfig
from bertkit.model import BertModel
from bertkit.probe import fit_probe, probe_encoder
from bertkit.tokenization import Tokenizer


def test_fit_probe_separable_noise_and_three_classes():
    rng = np.random.default_rng(0)
    y = np.arange(200) % 2
    x = rng.normal(size=(200, 8))
    x[:, 3] += 4.0 * (2 * y - 1)  # one informative feature
    assert fit_probe(x[:150], y[:150], x[150:], y[150:]) == 1.0
    noise = rng.normal(size=(200, 8))  # no signal: about chance
    assert 0.3 <= fit_probe(noise[:150], y[:150], noise[150:], y[150:]) <= 0.75
    y3 = np.arange(300) % 3
    x3 = rng.normal(size=(300, 4)) + 5.0 * np.eye(3, 4)[y3]
    assert fit_probe(x3[:240], y3[:240], x3[240:], y3[240:]) >= 0.95


def test_probe_encoder_reads_word_identity_from_a_random_encoder():
    # even random weights carry which words occur: a word that decides the label is linearly
    # visible in mean-pooled features, so the probe must beat chance clearly
    words = ["good", "bad", "film", "plot", "is", "was", "the"]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words
    tok = Tokenizer(vocab)
    torch.manual_seed(0)
    model = BertModel(
        BertConfig.from_preset(
            "tiny",
            vocab_size=len(vocab),
            hidden_size=32,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=32,
        )
    ).eval()
    rng = np.random.default_rng(1)

    def split(n):
        labels = [i % 2 for i in range(n)]
        texts = [
            f"the {rng.choice(['film', 'plot'])} {rng.choice(['is', 'was'])} {'good' if y else 'bad'}" for y in labels
        ]
        return texts, labels

    assert probe_encoder(model, tok, split(80), split(40), max_seq_length=16) >= 0.9
