"""A MiniLM cross-encoder fine-tuned on prefix pairs: the paper's way of training a judge, at our scale.

DeepPrune trains its judge on the *pair* (both prefixes in one input, so attention can compare them token
by token) with focal loss and oversampling. Our other learned judges read each prefix alone (a frozen
MiniLM embedding per text, cached), which is why they cost about a millisecond per pair; a cross-encoder
needs one forward pass per pair and cannot cache anything. This module exists to measure what that buys
on unseen questions (``research/cross_encoder.py``), not to ship a judge: the answer decides whether a
pair-reading judge is worth its latency here.

Why only the top layers are trained: on 2 CPU cores a full fine-tune step of MiniLM (batch 16) took 2-18 s
depending on the machine; freezing the lower layers removes most of the backward pass, and the trainable
part (one transformer layer, the pooler and the classifier: 7.7 MB in float32) is what would ship, within the 10 MB
budget. Everything is seeded (sample, order swaps, initialisation, dropout).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from deepprune_agents.errors import ConfigError
from deepprune_agents.judges._threads import judge_threads, use_threads
from deepprune_agents.training.losses import make_loss
from deepprune_agents.training.sampling import oversample_indices


@dataclass(frozen=True)
class CrossEncoderConfig:
    """Fine-tuning knobs. ``steps`` x ``batch_size`` pairs are drawn from the oversampled (class-balanced)
    training pool; ``trainable_layers`` top transformer layers and the classifier learn, the rest is frozen."""

    steps: int = 150
    batch_size: int = 16
    lr: float = 5e-5
    head_lr: float = 1e-3
    trainable_layers: int = 1
    max_length: int = 128
    loss: str = "focal"
    focal_alpha: float | None = None  # oversampling already balances the classes
    focal_gamma: float = 2.0
    seed: int = 0
    threads: int | None = None

    def validate(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise ConfigError(f"steps and batch_size must be >= 1 (got {self.steps}, {self.batch_size}).")
        if self.trainable_layers < 0:
            raise ConfigError(f"trainable_layers must be >= 0 (got {self.trainable_layers}).")
        if self.max_length < 8:
            raise ConfigError(f"max_length must be >= 8 tokens (got {self.max_length}).")


class CrossEncoder:
    """Tokenizer + ``AutoModelForSequenceClassification`` (one logit: same final answer) over MiniLM."""

    def __init__(self, model_path: str | None = None, trainable_layers: int = 1, max_length: int = 128) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from deepprune_agents.judges._encoder import default_model_path

        path = model_path or default_model_path()
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, local_files_only=True)
        self.max_length = max_length
        for p in self.model.parameters():
            p.requires_grad = False
        layers = self.model.base_model.encoder.layer
        if trainable_layers > len(layers):
            raise ConfigError(f"trainable_layers {trainable_layers} > the model's {len(layers)} layers.")
        for layer in list(layers)[len(layers) - trainable_layers :]:
            for p in layer.parameters():
                p.requires_grad = True
        for name, p in self.model.named_parameters():
            if not name.startswith(self.model.base_model_prefix):  # the classifier (and pooler, if any)
                p.requires_grad = True
        pooler = getattr(self.model.base_model, "pooler", None)
        if pooler is not None:
            for p in pooler.parameters():
                p.requires_grad = True

    def trainable_bytes(self) -> int:
        """Bytes of the parameters that fine-tuning changes (what would have to ship), float32."""
        return sum(p.numel() * 4 for p in self.model.parameters() if p.requires_grad)

    def _batch(self, pairs: Sequence[tuple[str, str]]) -> dict[str, torch.Tensor]:
        return dict(
            self.tokenizer(
                [a for a, _ in pairs],
                [b for _, b in pairs],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            )
        )

    def logits(self, pairs: Sequence[tuple[str, str]]) -> torch.Tensor:
        return self.model(**self._batch(pairs)).logits.squeeze(-1)

    def predict(self, pairs: Sequence[tuple[str, str]], batch_size: int = 64) -> npt.NDArray[np.float64]:
        """P(same final answer) per pair, averaged over both orders (the judge must be symmetric)."""
        self.model.eval()
        out = np.zeros(len(pairs), dtype=np.float64)
        with torch.inference_mode():
            for i in range(0, len(pairs), batch_size):
                chunk = list(pairs[i : i + batch_size])
                both = self.logits(chunk + [(b, a) for a, b in chunk])
                p = torch.sigmoid(both.double()).numpy()
                out[i : i + len(chunk)] = (p[: len(chunk)] + p[len(chunk) :]) / 2
        return out


@dataclass
class FitStats:
    steps: int
    pairs_seen: int
    seconds: float
    seconds_per_step: float
    final_loss: float
    trainable_bytes: int
    config: dict[str, Any]


def fit_cross_encoder(
    pairs: Sequence[tuple[str, str]],
    labels: Sequence[int] | npt.NDArray[np.integer[Any]],
    cfg: CrossEncoderConfig | None = None,
    model_path: str | None = None,
    progress: Callable[[int, float], None] | None = None,
) -> tuple[CrossEncoder, FitStats]:
    """Fine-tune on ``pairs`` (text a, text b) with 0/1 ``labels``: class-balanced by oversampling, each pair
    shown in a random order (so neither slot learns to mean "the first branch"), ``cfg.loss`` on the logit."""
    cfg = cfg or CrossEncoderConfig()
    cfg.validate()
    y = np.asarray(labels).astype(np.int64)
    if len(pairs) != y.size or y.size == 0:
        raise ConfigError(f"need as many labels as pairs, at least one (got {len(pairs)} pairs, {y.size} labels).")
    if y.min() == y.max():
        raise ConfigError("the training pairs have a single label: nothing to learn.")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    need = cfg.steps * cfg.batch_size
    order = oversample_indices(y, 1.0, cfg.seed)
    while order.size < need:  # a small pool is cycled through again, reshuffled
        order = np.concatenate([order, rng.permutation(order)])
    order = order[:need]
    swap = rng.random(need) < 0.5
    ce = CrossEncoder(model_path, cfg.trainable_layers, cfg.max_length)
    encoder = f"{ce.model.base_model_prefix}.encoder."
    head = [p for n, p in ce.model.named_parameters() if p.requires_grad and not n.startswith(encoder)]
    body = [p for n, p in ce.model.named_parameters() if p.requires_grad and n.startswith(encoder)]
    groups = [{"params": head, "lr": cfg.head_lr}] + ([{"params": body, "lr": cfg.lr}] if body else [])
    opt = torch.optim.AdamW(groups, weight_decay=0.01)
    loss_fn = make_loss(cfg.loss, alpha=cfg.focal_alpha, gamma=cfg.focal_gamma)
    use_threads(judge_threads(cfg.threads))
    ce.model.train()
    t0 = time.perf_counter()
    loss_value = float("nan")
    for step in range(cfg.steps):
        window = slice(step * cfg.batch_size, (step + 1) * cfg.batch_size)
        sel = order[window]
        batch = [(pairs[i][1], pairs[i][0]) if flip else pairs[i] for i, flip in zip(sel, swap[window], strict=True)]
        target = torch.tensor(y[sel], dtype=torch.float32)
        loss = loss_fn(ce.logits(batch), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss_value = float(loss.detach())
        if progress is not None:
            progress(step + 1, loss_value)
    seconds = time.perf_counter() - t0
    ce.model.eval()
    stats = FitStats(
        steps=cfg.steps,
        pairs_seen=need,
        seconds=seconds,
        seconds_per_step=seconds / cfg.steps,
        final_loss=loss_value,
        trainable_bytes=ce.trainable_bytes(),
        config=asdict(cfg),
    )
    return ce, stats
