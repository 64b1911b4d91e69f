"""bertkit.inference against the reference implementations (test-only dependencies):
sentence-transformers' encode on the real MiniLM checkpoint, and transformers' pipelines."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import require_shared

import bertkit

pytestmark = pytest.mark.usefixtures("one_thread")


def corpus_sentences(n: int) -> list[str]:
    """``n`` sentences of the shared corpus (sample.txt), spread over it: short and long ones."""
    lines = [x for x in require_shared("corpus", "sample.txt").read_text("utf-8").splitlines() if x.strip()]
    step = max(1, len(lines) // n)
    return lines[::step][:n]


def test_minilm_embeddings_equal_sentence_transformers(minilm_dir):
    st = pytest.importorskip("sentence_transformers")
    texts = corpus_sentences(32)
    assert max(map(len, texts)) > 4 * min(map(len, texts))  # variable lengths: padded batches
    ref = st.SentenceTransformer(str(minilm_dir), device="cpu").encode(
        texts, normalize_embeddings=True, batch_size=16, convert_to_numpy=True
    )
    got = bertkit.load(minilm_dir, device="cpu", max_tokens=2048).embed(texts, pooling="mean", normalize=True)
    assert got.shape == ref.shape == (32, 384)
    np.testing.assert_allclose(got, ref, atol=1e-5, rtol=0)
