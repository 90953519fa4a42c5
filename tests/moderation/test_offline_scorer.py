"""The offline toxicity scorer's fine-tuned top layer, its shared embeddings, and its training set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.offline_scorer_project_set import ABUSIVE_GROUPS, ALL_ZERO, GROUPS, TEMPLATE_KEY
from moderation.detectors.minilm import TOP_LAYER_INPUT, TOP_LAYER_PARAMS, bert_layer, mean_pool
from moderation.detectors.toxicity import LABELS, OFFLINE_HEAD_PATH, OfflineEmbeddingScorer
from moderation.policy import load_policy


@pytest.fixture(scope="module")
def offline() -> OfflineEmbeddingScorer:
    if not OFFLINE_HEAD_PATH.is_file():
        pytest.skip("offline head not trained (bench/train_offline_scorer.py)")
    return OfflineEmbeddingScorer()


def test_shipped_weights_are_small() -> None:
    assert OFFLINE_HEAD_PATH.stat().st_size < 5_000_000


def test_the_torch_layer_is_minilms_own_top_layer(offline: OfflineEmbeddingScorer) -> None:
    """bert_layer with the pretrained sixth layer's tensors reproduces Hugging Face's layer exactly,
    so a fine-tuned copy runs the same computation it was trained with."""
    import torch

    model = offline.minilm.model[0].auto_model
    texts = ["I'm proud of you for reaching out", "ok"]
    features = offline.minilm.model.preprocess(texts)
    inputs = {k: features[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    with torch.inference_mode():
        out = model(**inputs, output_hidden_states=True)
        state = model.encoder.layer[TOP_LAYER_INPUT].state_dict()
        mine = bert_layer(out.hidden_states[TOP_LAYER_INPUT], inputs["attention_mask"], state)
        real = inputs["attention_mask"].bool()
        assert (mine - out.last_hidden_state)[real].abs().max() < 1e-4
        pooled = mean_pool(out.last_hidden_state, inputs["attention_mask"]).numpy()
    np.testing.assert_allclose(
        pooled, offline.minilm.model.encode(texts, normalize_embeddings=True), atol=1e-5
    )


TEXTS = ["I can't see a way forward anymore", "my sister came to visit, it was lovely", "x"]


def test_shared_embeddings_are_the_original_minilm_ones(offline: OfflineEmbeddingScorer) -> None:
    reference = offline.minilm.model.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    np.testing.assert_allclose(offline.minilm.encode(TEXTS), reference, atol=1e-5)


def test_a_weights_file_with_a_top_layer_branches_after_the_frozen_layers(
    offline: OfflineEmbeddingScorer, tmp_path: Path
) -> None:
    """A weights file carrying ``top.*`` (here MiniLM's own pretrained top layer in fp16, as a
    stand-in for a fine-tuned one): the shared embeddings must stay the original ones (the
    offline head was trained on them), and the head reads the top layer's pooled output."""
    import torch

    state = offline.minilm.model[0].auto_model.encoder.layer[TOP_LAYER_INPUT].state_dict()
    shipped = np.load(OFFLINE_HEAD_PATH)
    arrays = {k: shipped[k] for k in shipped.files}
    arrays.update({f"top.{k}": state[k].detach().to(torch.float16).numpy() for k in TOP_LAYER_PARAMS})
    path = tmp_path / "with_top.npz"
    np.savez_compressed(path, **arrays)
    scorer = OfflineEmbeddingScorer(path)
    assert scorer.minilm.top is not None
    assert "fine-tuned top layer" in scorer.description
    reference = offline.minilm.model.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    np.testing.assert_allclose(scorer.minilm.encode(TEXTS), reference, atol=1e-5)
    feats = scorer.minilm.features(TEXTS)
    assert feats.shape == (len(TEXTS), 2 * scorer.dim)
    np.testing.assert_allclose(feats[:, scorer.dim :], reference, atol=5e-3)  # fp16 copy of the same layer
    np.testing.assert_allclose(scorer.score(TEXTS), offline.score(TEXTS), atol=0.03)


def _blocks(scores: np.ndarray) -> np.ndarray:
    rules = load_policy().profiles["support"].labels
    blocking = [
        (k, rules[f"toxicity.{x}"].threshold)
        for k, x in enumerate(LABELS)
        if f"toxicity.{x}" in rules and "block" in rules[f"toxicity.{x}"].actions
    ]
    return np.array([any(row[k] >= t for k, t in blocking) for row in scores])


def test_offline_scorer_on_sentences_it_was_not_trained_on(offline: OfflineEmbeddingScorer) -> None:
    """Written for this test, not in the training set: identity talk, quoting and casual swearing
    pass; a threat, an insult aimed at someone and dehumanising a group block."""
    allowed = [
        "thanks for the chat earlier, I'm feeling a lot calmer now",
        "fuck, the bus was late again and I nearly missed group",
        "As a bisexual woman I finally feel at home in this room",
    ]
    blocked = [
        "I'm going to come round and cave your head in",
        "nobody likes you, you spineless little worm",
        "those immigrants are cockroaches and should be driven out of town",
    ]
    project = {t for _, sentences, _ in GROUPS for t in sentences}
    assert not (set(allowed) | set(blocked)) & project
    decisions = _blocks(offline.score(allowed + blocked))
    assert list(decisions) == [False] * len(allowed) + [True] * len(blocked)


def test_project_set_is_consistent() -> None:
    texts = [t for _, sentences, _ in GROUPS for t in sentences]
    assert len(texts) == len(set(texts)), "a sentence appears twice (possibly with other targets)"
    names = [name for name, _, _ in GROUPS]
    assert set(ABUSIVE_GROUPS) <= set(names)
    for name, sentences, targets in GROUPS:
        assert sentences, name
        assert set(targets) <= set(ALL_ZERO), name
        if name in ABUSIVE_GROUPS:
            assert targets.get("toxicity") == 1.0, name
        else:
            assert all(targets.get(x) in (0.0, None) for x in ("insult", "threat", "identity_attack")), name
    assert set(TEMPLATE_KEY) <= set(texts)
