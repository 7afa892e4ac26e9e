"""Training the ``trained`` judge's head: trace files -> pairs -> frozen MiniLM embeddings -> head.

The expensive step is embedding the distinct truncated texts (a few thousand; ~1 min on 2 cores); the
head itself trains in seconds, so ablations (CE vs focal, oversampling on/off) reuse one
``EncodedPairs``. Everything is seeded: the pair sample, the oversampling draw, the batch order and
torch's initialisation and dropout, so the same command gives the same weights on the same machine.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from deepprune_agents.errors import ConfigError
from deepprune_agents.judges._encoder import MiniLMEncoder, shared_encoder
from deepprune_agents.judges.features import features_for
from deepprune_agents.judges.trained import PROVENANCE_FILE, PairHead, save_head
from deepprune_agents.training.losses import LOSS_NAMES, make_loss
from deepprune_agents.training.pairs import PairExample, build_pairs, labels_of
from deepprune_agents.training.sampling import class_counts, oversample_indices

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


@dataclass(kw_only=True)
class TrainConfig:
    """Hyper-parameters of one training run (recorded verbatim in provenance.json)."""

    truncation: str = "tokens:32"
    loss: str = "focal"
    alpha: float | None = 0.5
    gamma: float = 2.0
    oversample: float | None = 1.0  # minority/majority ratio after oversampling; None = off
    epochs: int = 6
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-4
    proj_dim: int = 64
    hidden: int = 64
    max_traces: int | None = 100  # traces sampled per question before forming all pairs
    max_pairs: int | None = None  # pairs sampled per question after that
    seed: int = 0
    threads: int = 2

    def validate(self) -> None:
        if self.loss not in LOSS_NAMES:
            raise ConfigError(f"unknown loss {self.loss!r}: use one of {', '.join(LOSS_NAMES)}.")
        if self.oversample is not None and not 0.0 < self.oversample <= 1.0:
            raise ConfigError(f"oversample must lie in (0, 1] (got {self.oversample}); omit it to disable.")
        for name in ("epochs", "batch_size", "proj_dim", "hidden", "threads"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1 (got {getattr(self, name)}).")
        if self.lr <= 0:
            raise ConfigError(f"lr must be > 0 (got {self.lr}).")
        from deepprune_agents.truncation import parse_truncation

        parse_truncation(self.truncation)


@dataclass
class EncodedPairs:
    """Pairs as indices into one matrix of distinct-text embeddings, plus hand features and labels."""

    emb: FloatArray  # (n_texts, dim)
    ia: IntArray  # (n_pairs,)
    ib: IntArray
    hand: FloatArray  # (n_pairs, n_features)
    labels: IntArray
    groups: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, mask: npt.NDArray[np.bool_]) -> EncodedPairs:
        groups = [g for g, keep in zip(self.groups, mask, strict=True) if keep] if self.groups else []
        return EncodedPairs(self.emb, self.ia[mask], self.ib[mask], self.hand[mask], self.labels[mask], groups)


def encode_pairs(pairs: Sequence[PairExample], encoder: MiniLMEncoder | None = None) -> EncodedPairs:
    """Embed each distinct text once and compute the hand features of every pair."""
    if not pairs:
        raise ConfigError("no training pairs: the trace files need questions with at least two traces.")
    enc = encoder or shared_encoder()
    index: dict[str, int] = {}
    for p in pairs:
        index.setdefault(p.a.text, len(index))
        index.setdefault(p.b.text, len(index))
    texts = list(index)
    emb = np.concatenate([enc.encode(texts[i : i + 1024]) for i in range(0, len(texts), 1024)])
    ia = np.fromiter((index[p.a.text] for p in pairs), dtype=np.int64, count=len(pairs))
    ib = np.fromiter((index[p.b.text] for p in pairs), dtype=np.int64, count=len(pairs))
    hand = features_for([(p.a.text, p.b.text) for p in pairs])
    return EncodedPairs(emb, ia, ib, hand, labels_of(pairs), [p.group for p in pairs])


def head_scores(head: PairHead, data: EncodedPairs, batch_size: int = 4096) -> FloatArray:
    """Probabilities of the head on encoded pairs (evaluation of ablations without re-encoding)."""
    head.eval()
    out = []
    emb = torch.from_numpy(data.emb)
    with torch.inference_mode():
        for s in range(0, len(data), batch_size):
            sl = slice(s, s + batch_size)
            logits = head(emb[data.ia[sl]], emb[data.ib[sl]], torch.from_numpy(data.hand[sl]))
            out.append(torch.sigmoid(logits).numpy())
    return np.concatenate(out).astype(np.float32) if out else np.zeros(0, dtype=np.float32)


def fit_head(data: EncodedPairs, cfg: TrainConfig, progress: bool = False) -> tuple[PairHead, list[float]]:
    """Train a PairHead on encoded pairs; returns it (eval mode) and the mean loss of each epoch."""
    cfg.validate()
    torch.manual_seed(cfg.seed)
    prev_threads = torch.get_num_threads()
    torch.set_num_threads(min(cfg.threads, prev_threads))
    try:
        head = PairHead(emb_dim=data.emb.shape[1], proj_dim=cfg.proj_dim, hidden=cfg.hidden)
        emb = torch.from_numpy(data.emb)
        hand = torch.from_numpy(data.hand)
        y = torch.from_numpy(data.labels.astype(np.float32))
        # Standardise the hand features (and the cosine the head appends) on the training pairs.
        cos = (emb[data.ia] * emb[data.ib]).sum(-1, keepdim=True)
        full = torch.cat([hand, cos], dim=-1)
        head.hand_mean.copy_(full.mean(0))
        head.hand_std.copy_(full.std(0).clamp_min(1e-3))
        loss_fn = make_loss(cfg.loss, alpha=cfg.alpha, gamma=cfg.gamma)
        opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        ia, ib = torch.from_numpy(data.ia), torch.from_numpy(data.ib)
        history: list[float] = []
        bar = _progress(cfg.epochs, progress)
        for epoch in range(cfg.epochs):
            if cfg.oversample:
                order = oversample_indices(data.labels, cfg.oversample, seed=cfg.seed + epoch)
            else:
                order = np.random.default_rng(cfg.seed + epoch).permutation(len(data))
            head.train()
            total, n = 0.0, 0
            for s in range(0, order.size, cfg.batch_size):
                idx = torch.from_numpy(order[s : s + cfg.batch_size])
                logits = head(emb[ia[idx]], emb[ib[idx]], hand[idx])
                loss = loss_fn(logits, y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * idx.numel()
                n += idx.numel()
            history.append(total / max(n, 1))
            bar(epoch, history[-1])
        head.eval()
        return head, history
    finally:
        torch.set_num_threads(prev_threads)


def _progress(total: int, enabled: bool) -> Any:
    """A tiny epoch progress bar (tqdm, already a dependency of transformers); no-op when disabled."""
    if not enabled:
        return lambda epoch, loss: None
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc="train-judge", unit="epoch")

    def step(epoch: int, loss: float) -> None:
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}")
        if epoch + 1 >= total:
            bar.close()

    return step


def file_digest(path: str | Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def train_judge(
    train_files: Sequence[str | Path],
    out_dir: str | Path,
    cfg: TrainConfig | None = None,
    *,
    progress: bool = True,
    command: str | None = None,
    metrics: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train on ``train_files`` and write head, config and provenance.json into ``out_dir``.

    Returns the provenance dict. ``metrics`` (e.g. from ``evaluate``) are recorded as given.
    """
    from deepprune_agents.trace_io import load_traces

    cfg = cfg or TrainConfig()
    cfg.validate()
    if not train_files:
        raise ConfigError("train-judge needs at least one --train trace file.")
    t0 = time.perf_counter()
    questions = load_traces(train_files)
    pairs = build_pairs(questions, cfg.truncation, cfg.max_traces, cfg.max_pairs, seed=cfg.seed)
    data = encode_pairs(pairs)
    t_enc = time.perf_counter() - t0
    head, history = fit_head(data, cfg, progress=progress)
    neg, pos = class_counts(data.labels)
    provenance: dict[str, Any] = {
        "judge": "trained",
        "data": [{"file": Path(f).name, "sha256": file_digest(f)} for f in train_files],
        "command": command,
        "seed": cfg.seed,
        "config": asdict(cfg),
        "pairs": len(data),
        "positives": pos,
        "negatives": neg,
        "distinct_texts": int(data.emb.shape[0]),
        "loss_per_epoch": [round(x, 6) for x in history],
        "encode_seconds": round(t_enc, 1),
        "train_seconds": round(time.perf_counter() - t0 - t_enc, 1),
        "torch": torch.__version__,
        "metrics": metrics or {},
    }
    save_head(head, out_dir, {"truncation": cfg.truncation})
    write_provenance(out_dir, provenance)
    return provenance


def write_provenance(out_dir: str | Path, provenance: dict[str, Any]) -> None:
    Path(out_dir, PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
