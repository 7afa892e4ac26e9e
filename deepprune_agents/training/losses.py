"""Binary losses for the judge head: focal loss (the paper's choice) and plain cross-entropy.

Pairs that reach different answers are the minority on easy questions and the majority on hard ones,
and most pairs are *easy* (identical set-ups, or obviously different numbers). Focal loss down-weights
the easy, well-classified pairs by ``(1 - p_t) ** gamma`` so the head spends its capacity on the
ambiguous prefixes; ``alpha`` re-weights the positive class. Cross-entropy is kept as the ablation.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Literal

import torch
import torch.nn.functional as F

from deepprune_agents.errors import ConfigError

LossName = Literal["focal", "ce"]
LOSS_NAMES: tuple[str, ...] = ("focal", "ce")
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def focal_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    alpha: float | None = 0.25,
    gamma: float = 2.0,
    reduction: Literal["mean", "sum", "none"] = "mean",
) -> torch.Tensor:
    """Binary focal loss on logits (Lin et al. 2017).

    ``FL = -alpha_t * (1 - p_t) ** gamma * log(p_t)`` with ``p_t = p`` for a positive target and
    ``1 - p`` for a negative one, ``alpha_t = alpha`` / ``1 - alpha`` likewise; ``alpha=None`` means no
    class weighting. ``gamma=0, alpha=None`` is exactly binary cross-entropy.
    """
    if gamma < 0:
        raise ConfigError(f"focal gamma must be >= 0 (got {gamma}).")
    if alpha is not None and not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"focal alpha must lie in [0, 1] or be None (got {alpha}).")
    targets = targets.to(logits.dtype)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")  # = -log(p_t), stable
    p = torch.sigmoid(logits)
    p_t = p * targets + (1.0 - p) * (1.0 - targets)
    loss = ce * (1.0 - p_t) ** gamma
    if alpha is not None:
        loss = loss * (alpha * targets + (1.0 - alpha) * (1.0 - targets))
    return _reduce(loss, reduction)


def cross_entropy_loss(
    logits: torch.Tensor, targets: torch.Tensor, reduction: Literal["mean", "sum", "none"] = "mean"
) -> torch.Tensor:
    """Plain binary cross-entropy on logits (the ablation)."""
    loss = F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype), reduction="none")
    return _reduce(loss, reduction)


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ConfigError(f"reduction must be 'mean', 'sum' or 'none' (got {reduction!r}).")


def make_loss(name: str, alpha: float | None = 0.25, gamma: float = 2.0) -> LossFn:
    """The loss called ``name`` ('focal' or 'ce') as ``fn(logits, targets) -> scalar``."""
    if name == "focal":
        return partial(focal_loss, alpha=alpha, gamma=gamma)
    if name == "ce":
        return cross_entropy_loss
    raise ConfigError(f"unknown loss {name!r}: use one of {', '.join(LOSS_NAMES)}.")
