"""The judge comparison's data: the data sets (shared traces and our corpus), MiniLM embeddings cached on
disk, and the pair table every judge is scored on (pairs at the first 32 tokens, their blend and context
features)."""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from _common import shared_data

from deepprune_agents.judges._encoder import pair_cosines
from deepprune_agents.judges.blend import blend_features
from deepprune_agents.judges.features import TextInfo, features_for
from deepprune_agents.judges.run_context import (
    CONTEXT_FEATURES,
    context_features,
    run_context,
)
from deepprune_agents.trace_io import load_traces
from deepprune_agents.traces import QuestionTraces
from deepprune_agents.training.pairs import (
    PairExample,
    build_pairs,
    exact_agree,
    text_identity,
)
from deepprune_agents.training.train import EncodedPairs

TRUNCATION = "tokens:32"
TEST_SETS = ("OVM Mistral", "OVM Llama", "MATH", "dates")


@dataclass
class Dataset:
    name: str
    files: list[Path]
    max_traces: int | None
    agree: Callable[[str | None, str | None], bool] | None = None
    test: bool = True


def datasets(corpus_dir: Path | None) -> list[Dataset]:
    tr = shared_data() / "traces"
    out = [
        Dataset("OVM Mistral", sorted(tr.glob("ovm_gsm8k_*_mistral7b-ep2.jsonl")), 40),
        Dataset("OVM Llama", sorted(tr.glob("ovm_gsm8k_*_llama7b-2-ep2.jsonl")), 40),
        Dataset("MATH", [tr / "qwen25math_math_n8.jsonl"], None),
        Dataset("dates", [tr / "verifycot_date_chatgpt35_n10.jsonl"], None, agree=exact_agree),
    ]
    for d in out:
        missing = [f for f in d.files if not f.is_file()] or ([] if d.files else [tr])
        if missing:
            raise SystemExit(f"missing {missing[0]}: set DEEPPRUNE_SHARED_DATA to the shared data folder.")
    files = corpus_files(corpus_dir)
    if files:
        out.append(Dataset("SmolLM2 corpus", files, None, test=False))
    return out


def corpus_files(corpus_dir: Path | None) -> list[Path]:
    """Our trace files in ``corpus_dir``: plain ``*.jsonl`` (a corpus being made) and packed ``*.jsonl.gz`` (the
    committed one, ``deepprune traces pack``); empty files (a run that wrote nothing yet) are skipped."""
    if corpus_dir is None or not corpus_dir.is_dir():
        return []
    found = [*corpus_dir.glob("*.jsonl"), *corpus_dir.glob("*.jsonl.gz")]
    return sorted(f for f in found if f.stat().st_size > 0)


# ----------------------------------------------------------------------------------- embedding cache
class DiskEmbeddings:
    """MiniLM embeddings by sha1(text), persisted in one .npz (bench/out is git-ignored)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.vec: dict[str, npt.NDArray[np.float32]] = {}
        if path.is_file():
            with np.load(path) as z:
                self.vec = dict(zip(z["keys"].tolist(), z["emb"], strict=True))

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha1(text.encode("utf-8")).hexdigest()

    def embed(self, texts: list[str]) -> npt.NDArray[np.float32]:
        from deepprune_agents.judges._encoder import shared_encoder

        missing = list(dict.fromkeys(t for t in texts if self.key(t) not in self.vec))
        if missing:
            t0 = time.perf_counter()
            enc = shared_encoder()
            for s in range(0, len(missing), 512):
                chunk = missing[s : s + 512]
                for t, e in zip(chunk, enc.encode(chunk), strict=True):
                    self.vec[self.key(t)] = e
            enc.clear_cache()
            print(f"embedded {len(missing)} new texts in {time.perf_counter() - t0:.0f}s", flush=True)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            keys = np.array(list(self.vec))
            np.savez(self.path, keys=keys, emb=np.stack([self.vec[k] for k in keys]))
        return np.stack([self.vec[self.key(t)] for t in texts]).astype(np.float32)


# ------------------------------------------------------------------------------------------- data
@dataclass
class PairTable:
    pairs: list[PairExample]
    dataset: npt.NDArray[np.str_]
    group: npt.NDArray[np.str_]
    labels: npt.NDArray[np.int64]
    enc: EncodedPairs  # embeddings + hand features for the trained head
    x: npt.NDArray[np.float32]  # blend features
    # context features (each question's sampled traces of one data set: a run)
    xc: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, len(CONTEXT_FEATURES))))


def context_table(pairs: list[PairExample], info: dict[str, TextInfo]) -> npt.NDArray[np.float64]:
    """``CONTEXT_FEATURES`` of the pairs of *one* data set: the run of a question is its traces drawn here (all
    of them, or ``max_traces``), as a policy sees every branch of its run at the truncation."""
    members: dict[str, dict[str, str]] = defaultdict(dict)
    rows: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(pairs):
        members[p.group][p.a.trace_id] = p.a.text
        members[p.group][p.b.trace_id] = p.b.text
        rows[p.group].append(i)
    out = np.zeros((len(pairs), len(CONTEXT_FEATURES)), dtype=np.float64)
    for g, idx in rows.items():
        ctx = run_context(members[g].values(), info)
        out[idx] = context_features([(pairs[i].a.text, pairs[i].b.text) for i in idx], ctx, info)
    return out


def check_identified(name: str, qs: list[QuestionTraces]) -> None:
    """Exit if a question has neither text nor ``question_key`` (a pack made before packs carried the key):
    the leave-one-out splits could not tell whether another data set holds it."""
    blind = [q.question_id for q in qs if not text_identity(q)]
    if blind:
        raise SystemExit(
            f"{name}: {len(blind)} question(s) (e.g. {blind[0]}) carry neither question text nor question_key, so "
            "the leave-one-out splits cannot tell whether another data set holds them: repack the file with "
            "`deepprune traces pack`."
        )


def build_table(
    sets: list[Dataset], cache: DiskEmbeddings, seed: int
) -> tuple[PairTable, dict[str, list[QuestionTraces]]]:
    pairs: list[PairExample] = []
    names: list[str] = []
    questions: dict[str, list[QuestionTraces]] = {}
    info: dict[str, Any] = {}
    xc: list[npt.NDArray[np.float64]] = []
    for d in sets:
        qs = load_traces(d.files)
        check_identified(d.name, qs)
        questions[d.name] = qs
        ps = build_pairs(qs, TRUNCATION, max_traces=d.max_traces, seed=seed, agree=d.agree)
        pairs += ps
        names += [d.name] * len(ps)
        xc.append(context_table(ps, info))
        print(
            f"{d.name}: {len(qs)} questions, {len(ps)} pairs, {np.mean([p.label for p in ps]):.2f} same-answer",
            flush=True,
        )
    index: dict[str, int] = {}
    for p in pairs:
        index.setdefault(p.a.text, len(index))
        index.setdefault(p.b.text, len(index))
    emb = cache.embed(list(index))
    ia = np.fromiter((index[p.a.text] for p in pairs), dtype=np.int64, count=len(pairs))
    ib = np.fromiter((index[p.b.text] for p in pairs), dtype=np.int64, count=len(pairs))
    text_pairs = [(p.a.text, p.b.text) for p in pairs]
    cos = pair_cosines(text_pairs, emb[ia], emb[ib])
    x = blend_features(text_pairs, cos, info)
    labels = np.fromiter((p.label for p in pairs), dtype=np.int64, count=len(pairs))
    hand = features_for(text_pairs, info)  # the trained head's hand features
    enc = EncodedPairs(emb, ia, ib, hand, labels, [p.group for p in pairs])
    table = PairTable(pairs, np.array(names), np.array([p.group for p in pairs]), labels, enc, x, np.concatenate(xc))
    return table, questions
