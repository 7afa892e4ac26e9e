"""The LLM-based judges: yes/no probability reduction, the llm judge's configuration and failures, and
the transformers judge on tiny randomly initialised local checkpoints (real transformers, no fakes)."""

from __future__ import annotations

import math
import socket
from pathlib import Path

import pytest

from deepprune_agents.errors import ConfigError, JudgeError
from deepprune_agents.judges import get_judge
from deepprune_agents.judges.prompt import DEFAULT_TEMPLATE, p_yes_from_logprobs, render_prompt
from deepprune_agents.traces import PartialTrace


def pt(text: str) -> PartialTrace:
    return PartialTrace(text=text)


# ---------------------------------------------------------------- prompt + P(yes)


def test_render_prompt_keeps_texts_verbatim() -> None:
    out = render_prompt("48 / 2 = {x}", "a\nb")
    assert "48 / 2 = {x}" in out and "a\nb" in out
    with pytest.raises(ConfigError, match="placeholders"):
        render_prompt("a", "b", "no placeholders")


def test_p_yes_normalises_over_variants() -> None:
    top = [("Yes", math.log(0.5)), (" yes", math.log(0.1)), ("No", math.log(0.2)), ("The", math.log(0.2))]
    assert p_yes_from_logprobs(top) == pytest.approx(0.6 / 0.8)
    assert p_yes_from_logprobs([("Ġno", 0.0)]) == 0.0
    assert p_yes_from_logprobs([("▁YES.", -0.1)]) == 1.0
    assert p_yes_from_logprobs([("The", -0.1)], fallback_token="The") == 0.5
    assert p_yes_from_logprobs([], fallback_token="yes") == 1.0


# ---------------------------------------------------------------- llm judge


def test_llm_judge_configuration_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEEPPRUNE_JUDGE_BASE_URL", raising=False)
    with pytest.raises(ConfigError, match="base_url"):
        get_judge("llm")
    with pytest.raises(ConfigError, match="http"):
        get_judge("llm", base_url="localhost:8000/v1")
    with pytest.raises(ConfigError, match="placeholders"):
        get_judge("llm", base_url="http://127.0.0.1:1/v1", prompt_template="same?")
    with pytest.raises(ConfigError, match="top_logprobs"):
        get_judge("llm", base_url="http://127.0.0.1:1/v1", top_logprobs=50)


async def test_llm_judge_unreachable_server_is_judge_error() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    judge = get_judge("llm", base_url=f"http://127.0.0.1:{port}/v1", model="m", timeout_s=5.0, fallback=None)
    with pytest.raises(JudgeError, match="did not answer"):
        await judge.ascore([(pt("a"), pt("b"))])
    assert await judge.ascore([]) == []


# ---------------------------------------------------------------- transformers judge


def _tokenizer_dir(dest: Path) -> None:
    from transformers import AutoTokenizer

    from deepprune_agents.judges._encoder import default_model_path

    AutoTokenizer.from_pretrained(default_model_path(), local_files_only=True).save_pretrained(str(dest))


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    d = tmp_path_factory.mktemp("tiny_cls")
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
        num_labels=2, id2label={0: "different", 1: "same"}, label2id={"different": 0, "same": 1},
    )  # fmt: skip
    BertForSequenceClassification(cfg).save_pretrained(str(d))
    _tokenizer_dir(d)
    return d


@pytest.fixture(scope="module")
def tiny_causal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    d = tmp_path_factory.mktemp("tiny_causal")
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=30522, n_embd=32, n_layer=1, n_head=2, n_positions=512))
    model.save_pretrained(str(d))
    _tokenizer_dir(d)
    return d


async def test_transformers_classifier_scores_batched(tiny_classifier: Path) -> None:
    judge = get_judge("transformers", path=str(tiny_classifier), batch_size=2)
    pairs = [(pt(f"step {i}: {i} + {i} = {2 * i}"), pt(f"we get {i * 3} apples")) for i in range(5)]
    scores = await judge.ascore(pairs)
    assert len(scores) == 5 and all(0.0 <= s <= 1.0 for s in scores)
    alone = await judge.ascore([pairs[3]])
    assert alone[0] == pytest.approx(scores[3], abs=1e-4)  # padding inside a batch does not change a score


async def test_transformers_causal_reads_yes_no(tiny_causal: Path) -> None:
    import torch

    from deepprune_agents.judges.hf import TransformersJudge

    judge = TransformersJudge(str(tiny_causal), batch_size=4)
    pairs = [(pt("16 - 3 - 4 = 9"), pt("9 * 2 = 18")), (pt("a"), pt("b"))]
    scores = judge.score_sync(pairs)
    assert len(scores) == 2 and all(0.0 <= s <= 1.0 for s in scores)
    # Steer the final hidden state towards the "yes" embedding: P(yes) must go to ~1, and to ~0 for "no".
    model = judge._model
    yes_id = judge._tok.encode("yes", add_special_tokens=False)[0]
    no_id = judge._tok.encode("no", add_special_tokens=False)[0]
    for target, expect_high in ((yes_id, True), (no_id, False)):
        with torch.no_grad():
            model.transformer.ln_f.weight.zero_()
            w = model.transformer.wte.weight[target]
            model.transformer.ln_f.bias.copy_(40.0 * w / w.dot(w))  # logit(target) = 40
        steered = judge.score_sync(pairs)
        assert all((s > 0.99) if expect_high else (s < 0.01) for s in steered)


def test_transformers_judge_bad_paths(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="path"):
        get_judge("transformers")
    with pytest.raises(ConfigError, match=r"config\.json"):
        get_judge("transformers", path=str(tmp_path))
    (tmp_path / "config.json").write_text('{"architectures": ["Mystery"]}')
    with pytest.raises(ConfigError, match="kind="):
        get_judge("transformers", path=str(tmp_path))


def test_default_template_has_placeholders() -> None:
    assert "{a}" in DEFAULT_TEMPLATE and "{b}" in DEFAULT_TEMPLATE
