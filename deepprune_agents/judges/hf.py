"""The ``transformers`` judge: a local Hugging Face checkpoint directory, scored in-process.

Two kinds of checkpoint are understood, detected from ``config.json``:

* sequence classification (a cross-encoder fine-tuned on pairs): P(same) = softmax of the positive
  label, found by name ('same', 'yes', 'equivalent', 'LABEL_1' ...) or ``positive_label``;
* causal LM (e.g. ``THU-KEG/DeepPrune-Judge-4B`` downloaded by the user): the same yes/no prompt as
  the ``llm`` judge, P(yes) from the next-token distribution, normalised over yes/no variants.

It never downloads: ``local_files_only=True``. Forward passes run in a worker thread under a lock.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from deepprune_agents.errors import ConfigError, JudgeError
from deepprune_agents.judges._threads import judge_threads, use_threads
from deepprune_agents.judges.base import TracePair
from deepprune_agents.judges.prompt import DEFAULT_TEMPLATE, render_prompt

_POSITIVE_NAMES = ("same", "yes", "equivalent", "equal", "positive", "true", "entailment", "label_1", "1")


class TransformersJudge:
    """A local HF sequence-classification or causal-LM checkpoint as a pair judge."""

    name = "transformers"

    def __init__(
        self,
        path: str | None = None,
        *,
        device: str = "cpu",
        batch_size: int = 16,
        kind: Literal["auto", "classification", "causal"] = "auto",
        positive_label: int | str | None = None,
        prompt_template: str = DEFAULT_TEMPLATE,
        max_length: int = 1024,
        torch_dtype: str | None = None,
        threads: int | None = None,
    ) -> None:
        if not path:
            raise ConfigError(
                "the transformers judge needs a local checkpoint: pass path='/dir/with/config.json' in judge_options."
            )
        p = Path(path).expanduser()
        if not (p / "config.json").is_file():
            raise ConfigError(f"{str(p)!r} is not a Hugging Face checkpoint folder (no config.json).")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1 (got {batch_size}).")
        if kind not in ("auto", "classification", "causal"):
            raise ConfigError(f"kind must be 'auto', 'classification' or 'causal' (got {kind!r}).")
        render_prompt("", "", prompt_template)
        self.path = p
        self.device = device
        self.threads = judge_threads(threads)
        self.batch_size = batch_size
        self.max_length = max_length
        self.prompt_template = prompt_template
        self.torch_dtype = torch_dtype
        self.kind = self._detect(kind)
        self.positive_label = positive_label
        self._model: Any = None
        self._tok: Any = None
        self._pos_index = 1
        self._yes_ids: list[int] = []
        self._no_ids: list[int] = []
        self._lock = threading.Lock()

    def _detect(self, kind: str) -> str:
        if kind != "auto":
            return kind
        cfg = json.loads((self.path / "config.json").read_text(encoding="utf-8"))
        archs = " ".join(cfg.get("architectures") or [])
        if "ForSequenceClassification" in archs:
            return "classification"
        if "ForCausalLM" in archs or "LMHeadModel" in archs or "ForConditionalGeneration" in archs:
            return "causal"
        raise ConfigError(
            f"cannot tell the kind of checkpoint {str(self.path)!r} (architectures={archs or 'none'}); "
            "pass kind='classification' or kind='causal'."
        )

    # ------------------------------------------------------------------ loading
    def _load(self) -> None:
        if self._model is not None:
            return
        import torch
        from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

        try:
            tok = AutoTokenizer.from_pretrained(str(self.path), local_files_only=True)
            kwargs: dict[str, Any] = {"local_files_only": True}
            if self.torch_dtype:
                kwargs["dtype"] = getattr(torch, self.torch_dtype)
            cls: Any = AutoModelForSequenceClassification if self.kind == "classification" else AutoModelForCausalLM
            model = cls.from_pretrained(str(self.path), **kwargs).to(self.device).eval()
        except Exception as exc:
            raise JudgeError(
                f"could not load {str(self.path)!r} as a {self.kind} checkpoint on {self.device!r}: {exc}"
            ) from exc
        if self.kind == "classification":
            self._pos_index = self._positive_index(model.config)
        else:
            tok.padding_side = "left"  # the next-token logits are read at the last position
            if tok.pad_token is None:
                tok.pad_token = tok.eos_token or tok.unk_token
            self._yes_ids, self._no_ids = _word_token_ids(tok, {"yes"}), _word_token_ids(tok, {"no"})
            if not self._yes_ids or not self._no_ids:
                raise JudgeError(f"the tokenizer of {str(self.path)!r} has no single-token 'yes'/'no'.")
        self._tok, self._model = tok, model

    def _positive_index(self, config: Any) -> int:
        n = int(getattr(config, "num_labels", 2))
        id2label = {int(k): str(v) for k, v in (getattr(config, "id2label", None) or {}).items()}
        want = self.positive_label
        if isinstance(want, int):
            if not 0 <= want < n:
                raise ConfigError(f"positive_label={want} is out of range for {n} labels.")
            return want
        if isinstance(want, str):
            for i, lab in id2label.items():
                if lab.lower() == want.lower():
                    return i
            raise ConfigError(f"positive_label {want!r} is not one of the labels {sorted(id2label.values())}.")
        if n == 1:
            return 0  # single logit: sigmoid
        for name in _POSITIVE_NAMES:
            for i, lab in id2label.items():
                if lab.lower() == name:
                    return i
        return n - 1

    # ------------------------------------------------------------------ scoring
    def score_sync(self, pairs: Sequence[TracePair]) -> list[float]:
        if not pairs:
            return []
        import torch

        with self._lock:
            self._load()
            use_threads(self.threads)
            out: list[float] = []
            with torch.inference_mode():
                for s in range(0, len(pairs), self.batch_size):
                    batch = pairs[s : s + self.batch_size]
                    if self.kind == "classification":
                        out.extend(self._classify(batch))
                    else:
                        out.extend(self._causal(batch))
        if not all(math.isfinite(x) for x in out):
            raise JudgeError(f"the checkpoint {str(self.path)!r} produced non-finite scores.")
        return out

    def _classify(self, batch: Sequence[TracePair]) -> list[float]:
        import torch

        enc = self._tok(
            [a.text for a, _ in batch],
            [b.text for _, b in batch],
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        ).to(self.device)
        logits = self._model(**enc).logits.float()
        if logits.shape[-1] == 1:
            probs = torch.sigmoid(logits[:, 0])
        else:
            probs = torch.softmax(logits, dim=-1)[:, self._pos_index]
        return [float(x) for x in probs.cpu()]

    def _causal(self, batch: Sequence[TracePair]) -> list[float]:
        import torch

        prompts = [self._chat(render_prompt(a.text, b.text, self.prompt_template)) for a, b in batch]
        enc = self._tok(prompts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt").to(
            self.device
        )
        logits = self._model(**enc).logits[:, -1, :].float()
        logp = torch.log_softmax(logits, dim=-1)
        p_yes = logp[:, self._yes_ids].exp().sum(-1)
        p_no = logp[:, self._no_ids].exp().sum(-1)
        total = p_yes + p_no
        probs = torch.where(total > 0, p_yes / total.clamp_min(1e-30), torch.full_like(total, 0.5))
        return [float(x) for x in probs.cpu()]

    def _chat(self, prompt: str) -> str:
        if getattr(self._tok, "chat_template", None):
            text: str = self._tok.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
            )
            return text
        return prompt + "\nAnswer:"

    async def ascore(self, pairs: Sequence[TracePair]) -> list[float]:
        return await asyncio.to_thread(self.score_sync, list(pairs))


def _word_token_ids(tok: Any, words: set[str]) -> list[int]:
    """Ids of single tokens spelling a yes/no variant ('yes', ' Yes', 'YES' ...)."""
    ids: set[int] = set()
    for w in words:
        for variant in (w, w.capitalize(), w.upper(), " " + w, " " + w.capitalize()):
            enc = tok.encode(variant, add_special_tokens=False)
            if len(enc) == 1:
                ids.add(int(enc[0]))
    unk = getattr(tok, "unk_token_id", None)
    if unk is not None:
        ids.discard(unk)
    return sorted(ids)
