"""Speed kernels the model calls: a faster CPU dropout mask and the CPU attention path.

Each computes what its torch counterpart computes (``F.dropout``,
``F.scaled_dot_product_attention``), only faster where torch's CPU path is slow; on other devices
they defer to torch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _cpu_keep_mask(shape: torch.Size, p: float, device: torch.device) -> tuple[torch.Tensor, float]:
    """A Bernoulli keep-mask for dropout on CPU and its rescaling factor.

    torch's CPU ``bernoulli_`` draws one random number per element on one thread (~8 ns
    each); here one 64-bit draw gives four 16-bit uniforms, 5-8x faster (measured). The drop
    probability is ``p`` rounded to a multiple of 1/65536 (|error| <= 7.7e-6), and the returned
    scale is ``1 / (1 - that probability)``, so the expectation is preserved exactly. Seeded by
    torch's default CPU generator (``torch.manual_seed``).
    """
    n = math.prod(shape)
    ticks = min(round(p * 65536), 65535)  # drop when the uniform is among the lowest `ticks`
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=device).random_(-(2**63), None)
    r16 = words.view(torch.int16)[:n].view(shape)  # uniform in [-32768, 32767]
    return r16 >= ticks - 32768, 65536 / (65536 - ticks)


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Dropout; on CPU with the faster mask generator of :func:`_cpu_keep_mask`."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or p >= 1.0:
        return F.dropout(x, p, True)
    keep, scale = _cpu_keep_mask(x.shape, p, x.device)
    return x * (keep.to(x.dtype) * scale)


class Dropout(nn.Dropout):
    """``nn.Dropout`` (same ``p``, same train/eval behaviour) using :func:`dropout`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)


def attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, dropout_p: float
) -> torch.Tensor:
    """softmax(q k^T / sqrt(hs) [masked]) v, with dropout on the probabilities.

    q (B, nh, R, hs), k and v (B, nh, T, hs), mask (B, 1, 1, T) bool or None -> (B, nh, R, hs).
    Runs ``F.scaled_dot_product_attention``, except for attention dropout on CPU: there SDPA
    itself falls back to its unfused math path (matmul, softmax, dropout, matmul); this runs the
    same math with the faster dropout mask.
    """
    if dropout_p == 0.0 or q.device.type != "cpu":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
    scores = (q * (1.0 / math.sqrt(q.shape[-1]))) @ k.transpose(-2, -1)  # (B, nh, R, T)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    probs = scores.softmax(-1, dtype=torch.float32).to(v.dtype)  # (B, nh, R, T)
    return dropout(probs, dropout_p, True) @ v  # (B, nh, R, hs)
