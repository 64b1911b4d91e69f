"""Shared test fixtures: where the real data lives, and torch kept to a modest thread count."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# ../shared/data beside the project; BERTKIT_SHARED_DATA overrides.
SHARED_DATA = Path(os.environ.get("BERTKIT_SHARED_DATA", REPO.parent / "shared" / "data"))
MINILM = SHARED_DATA / "checkpoints" / "minilm-l6-uncased"
# Tests never reach the Hugging Face Hub: a Hub name resolves from a cache the test lays out.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def require_shared(*parts: str) -> Path:
    """Return ``SHARED_DATA/parts``, or skip the test with a clear reason if it is absent."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared data not available: {p} (set BERTKIT_SHARED_DATA)")
    return p


@pytest.fixture
def minilm_dir() -> Path:
    return require_shared("checkpoints", "minilm-l6-uncased")


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run fastest on one torch thread (more threads only contend on a busy
    machine); modules opt in with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
