"""bertkit: BERT end to end — WordPiece, pre-training, fine-tuning, HF-compatible checkpoints."""

__version__ = "0.1.0"

from bertkit.errors import BertkitError

__all__ = ["__version__", "BertkitError"]
