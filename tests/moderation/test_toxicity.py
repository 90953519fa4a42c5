"""Toxicity detector: the real Detoxify class on a tiny generated checkpoint, and the offline scorer."""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers

from config.ids import EventID, RoomID, UserID
from moderation.detectors.onnx_runtime import int8_pays_off
from moderation.detectors.toxicity import (
    LABELS,
    OFFLINE_HEAD_META_PATH,
    OFFLINE_HEAD_PATH,
    DetoxifyScorer,
    OfflineEmbeddingScorer,
    ToxicityDetector,
    ToxicityWeightsError,
    bert_uncased_vocab_path,
    calibrate,
    check_calibration,
    detoxify_checkpoint_dict,
    load_toxicity_detector,
    write_hf_folder,
)
from moderation.policy import load_policy
from moderation.types import Message, NormalizedText, ScreenItem

TINY_BERT = {
    "model_type": "bert",
    "vocab_size": 30522,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
}
TEXTS = ["hello there, welcome to the group", "you are a worthless piece of trash", "ok"]


@pytest.fixture(scope="module")
def tiny(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, Path, transformers.BertForSequenceClassification]:
    """A tiny BERT with random weights, its local HF folder and a Detoxify checkpoint of it."""
    root = tmp_path_factory.mktemp("tiny-detoxify")
    hf = write_hf_folder(root / "tiny-bert", TINY_BERT, num_labels=6)
    torch.manual_seed(7)
    model = transformers.BertForSequenceClassification(transformers.BertConfig.from_pretrained(hf)).eval()
    ckpt = root / "tiny.ckpt"
    torch.save(detoxify_checkpoint_dict(model.state_dict(), model_type=str(hf)), ckpt)
    return ckpt, hf, model


def _source_probs(
    model: transformers.BertForSequenceClassification, hf: Path, texts: list[str]
) -> np.ndarray:
    tok = transformers.BertTokenizer.from_pretrained(hf)
    with torch.no_grad():
        enc = tok(texts, return_tensors="pt", padding=True, truncation=True)
        return torch.sigmoid(model(**enc).logits).numpy()


def test_real_detoxify_loads_the_generated_checkpoint_and_its_weights(tiny) -> None:  # type: ignore[no-untyped-def]
    from detoxify import Detoxify

    ckpt, hf, model = tiny
    detox = Detoxify("original", checkpoint=str(ckpt), device="cpu")
    assert detox.class_names == list(LABELS)
    got = detox.predict(TEXTS)
    want = _source_probs(model, hf, TEXTS)
    for j, label in enumerate(LABELS):
        np.testing.assert_allclose(got[label], want[:, j], atol=1e-5)


def test_scorer_verifies_weights_and_matches_the_source_model(tiny) -> None:  # type: ignore[no-untyped-def]
    ckpt, hf, model = tiny
    scorer = DetoxifyScorer(ckpt, quantize=False)
    assert scorer.tensors_verified == len(model.state_dict())
    np.testing.assert_allclose(scorer.score(TEXTS), _source_probs(model, hf, TEXTS), atol=1e-5)
    # Random weights give scores that are not all 0.5: they really come from this model.
    assert np.ptp(scorer.score(TEXTS)) > 1e-4


def test_quantised_scores_stay_close_to_fp32(tiny) -> None:  # type: ignore[no-untyped-def]
    ckpt, _, _ = tiny
    fp32 = DetoxifyScorer(ckpt, quantize=False).score(TEXTS)
    int8 = DetoxifyScorer(ckpt, quantize=True).score(TEXTS)
    assert int8.shape == (len(TEXTS), 6)
    assert np.max(np.abs(int8 - fp32)) < 0.02


def test_checkpoint_with_wrong_key_prefix_is_refused(tiny, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ckpt, hf, model = tiny
    bad = tmp_path / "prefixed.ckpt"
    sd = {f"model.{k}": v for k, v in model.state_dict().items()}  # e.g. a Lightning module's state dict
    torch.save(detoxify_checkpoint_dict(sd, model_type=str(hf)), bad)
    with pytest.raises(ToxicityWeightsError, match=r"did not load: .* not in the checkpoint"):
        DetoxifyScorer(bad)


def test_checkpoint_without_detoxify_config_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "plain.ckpt"
    torch.save({"weights": {}}, bad)
    with pytest.raises(ToxicityWeightsError, match="not a Detoxify checkpoint"):
        DetoxifyScorer(bad)
    with pytest.raises(ToxicityWeightsError, match="does not exist"):
        DetoxifyScorer(tmp_path / "missing.ckpt")


def test_official_style_model_type_loads_offline_from_folder_beside_checkpoint(tiny, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Released checkpoints say model_type 'bert-base-uncased'; offline, a '<stem>-hf' folder serves."""
    _, hf, model = tiny
    ckpt = tmp_path / "official-like.ckpt"
    torch.save(detoxify_checkpoint_dict(model.state_dict(), model_type="bert-base-uncased"), ckpt)
    write_hf_folder(tmp_path / "official-like-hf", TINY_BERT, num_labels=6)
    scorer = DetoxifyScorer(ckpt, quantize=False)
    np.testing.assert_allclose(scorer.score(TEXTS), _source_probs(model, hf, TEXTS), atol=1e-5)


def test_vocab_is_bert_base_uncased() -> None:
    lines = bert_uncased_vocab_path().read_text(encoding="utf-8").splitlines()
    assert len(lines) == 30522
    assert lines[0] == "[PAD]"


# ------------------------------------------------------------------------------------------------
# Offline scorer and detector


@pytest.fixture(scope="module")
def offline() -> OfflineEmbeddingScorer:
    if not OFFLINE_HEAD_PATH.is_file():
        pytest.skip("offline head not trained (bench/train_offline_scorer.py)")
    return OfflineEmbeddingScorer()


def test_offline_scorer_ranks_abuse_far_above_support(offline: OfflineEmbeddingScorer) -> None:
    s = offline.score(["you are a worthless piece of trash", "thanks, I slept better last night"])
    assert s.shape == (2, 6)
    assert ((s >= 0) & (s <= 1)).all()
    tox, insult = LABELS.index("toxicity"), LABELS.index("insult")
    assert s[0, tox] > 0.5 > s[1, tox]
    assert s[0, insult] - s[1, insult] > 0.4


def test_offline_calibration_is_monotone_and_maps_operating_points_to_policy_thresholds(
    offline: OfflineEmbeddingScorer,
) -> None:
    """The shipped knots send each blocking label's recorded operating point (chosen on the training
    part's validation folds) to that label's threshold in config/policy.toml, and nothing else moves."""
    cal = json.loads(OFFLINE_HEAD_META_PATH.read_text())["calibration"]
    rules = load_policy().profiles[cal["policy"]["profile"]].labels
    blocking = {x for x in LABELS if (r := rules.get(f"toxicity.{x}")) is not None and "block" in r.actions}
    assert set(cal["per_label"]) == blocking == {"insult", "threat", "identity_attack", "severe_toxicity"}

    grid = np.tile(np.linspace(0.0, 1.0, 2001, dtype=np.float32)[:, None], (1, len(LABELS)))
    out = calibrate(grid, offline.cal_x, offline.cal_y)
    assert (np.diff(out, axis=0) >= 0).all()  # monotone: ranking is never changed
    assert (out[0] == 0).all()
    assert (out[-1] == 1).all()
    for k, label in enumerate(LABELS):
        if label not in blocking:
            np.testing.assert_allclose(out[:, k], grid[:, k], atol=1e-6)  # identity
            continue
        threshold = rules[f"toxicity.{label}"].threshold
        row = cal["per_label"][label]
        assert row["policy_threshold"] == cal["policy"]["thresholds"][label] == threshold
        raw = float(offline.cal_x[k, 1])
        assert raw == pytest.approx(row["raw_threshold"], abs=1e-4)
        p = np.full((3, len(LABELS)), 0.5, dtype=np.float32)
        p[:, k] = (raw - 1e-4, raw, raw + 1e-4)
        mapped = calibrate(p, offline.cal_x, offline.cal_y)[:, k]
        assert mapped[1] == pytest.approx(threshold, abs=1e-6)
        assert mapped[0] < threshold <= mapped[2]


def test_offline_score_is_the_calibrated_head(offline: OfflineEmbeddingScorer) -> None:
    from moderation.detectors.toxicity import head_probabilities, mlp_probabilities

    texts = ["you are a worthless piece of trash", "thanks, I slept better last night"]
    feats = offline.minilm.features(texts)
    x = (
        feats[:, offline.dim :] if offline.minilm.top is not None else feats
    )  # the fine-tuned top layer's output
    raw = mlp_probabilities(x, **offline.params) if offline.mlp else head_probabilities(x, **offline.params)
    np.testing.assert_allclose(offline.score(texts), calibrate(raw, offline.cal_x, offline.cal_y), atol=1e-6)


def test_calibration_knots_must_be_monotone() -> None:
    ok = np.tile(np.array([0.0, 0.3, 1.0], dtype=np.float32), (len(LABELS), 1))
    check_calibration(ok, ok)
    bad = ok.copy()
    bad[2, 1] = 1.2  # not increasing
    with pytest.raises(ValueError, match="increasing"):
        check_calibration(ok, bad)
    with pytest.raises(ValueError, match="shape"):
        check_calibration(ok[:3], ok[:3])


def _item(body: str, norm: str | None = None) -> ScreenItem:
    message = Message(
        event_id=EventID("$e"),
        room_id=RoomID("!r:hearth.test"),
        sender=UserID("@a:hearth.test"),
        body=body,
        sent_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    text = body if norm is None else norm
    return ScreenItem(message=message, norm=NormalizedText(body, text, tuple(range(len(text)))))


class _FixedScorer:
    description = "fixed"

    def __init__(self) -> None:
        self.seen: list[list[str]] = []

    def score(self, texts):  # type: ignore[no-untyped-def]
        self.seen.append(list(texts))
        return np.tile(np.linspace(0.1, 0.6, 6, dtype=np.float32), (len(texts), 1))


def test_detector_emits_six_labelled_signals_per_message_from_normalised_text() -> None:
    scorer = _FixedScorer()
    out = ToxicityDetector(scorer).detect([_item("y0u 1d10t", "you idiot"), _item("hi", "")])
    assert scorer.seen == [["you idiot", "hi"]]  # normalised text; body when normalisation is empty
    assert len(out) == 2
    for signals in out:
        assert [s.label for s in signals] == [f"toxicity.{label}" for label in LABELS]
        assert all(s.detector == "toxicity" and 0 <= s.score <= 1 for s in signals)


def test_detector_with_offline_scorer(offline: OfflineEmbeddingScorer) -> None:
    out = ToxicityDetector(offline).detect(
        [_item("you are a worthless piece of trash"), _item("good morning")]
    )
    assert [len(s) for s in out] == [6, 6]
    assert out[0][0].score > out[1][0].score


def test_loader_chooses_detoxify_when_configured_else_offline(tiny, offline, caplog) -> None:  # type: ignore[no-untyped-def]
    ckpt, _, _ = tiny
    log = logging.getLogger("test.toxicity")
    with caplog.at_level(logging.INFO, logger="test.toxicity"):
        det, desc = load_toxicity_detector(str(ckpt), log, quantize=True)
        assert isinstance(det.scorer, DetoxifyScorer)
        assert desc.startswith("detoxify tiny int8")
        det, desc = load_toxicity_detector(None, log)
        assert isinstance(det.scorer, OfflineEmbeddingScorer)
        assert "not configured" in desc
    assert any("toxicity scorer active: detoxify" in r.getMessage() for r in caplog.records)
    assert any("toxicity scorer active: offline" in r.getMessage() for r in caplog.records)


def test_loader_falls_back_loudly_on_a_refused_checkpoint(tmp_path: Path, offline, caplog) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.ckpt"
    torch.save({"nope": 1}, bad)
    with caplog.at_level(logging.ERROR):
        det, desc = load_toxicity_detector(str(bad), logging.getLogger("test.toxicity"))
    assert isinstance(det.scorer, OfflineEmbeddingScorer)
    assert "refused" in desc
    assert any("unusable" in r.getMessage() for r in caplog.records)


def test_length_buckets_keep_input_order(tiny) -> None:  # type: ignore[no-untyped-def]
    """Texts of very different lengths go to different sub-batches; results come back in order."""
    ckpt, _, _ = tiny
    scorer = DetoxifyScorer(ckpt, quantize=False, sub_batch=3)
    texts = [("word " * n).strip() for n in (40, 1, 7, 3, 90, 2, 15, 1, 60)]
    batched = scorer.score(texts)
    one_by_one = np.concatenate([scorer.score([t]) for t in texts])
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)
    lengths = [len(scorer.tokenizer(t)["input_ids"]) for t in texts]
    order = sorted(range(len(texts)), key=lambda i: lengths[i])
    assert len(scorer._buckets(order, lengths)) >= 4


def test_offline_embeddings_are_cached_and_serve_as_an_embedder(
    offline: OfflineEmbeddingScorer, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = ["a message seen by two detectors", "another one"]
    first = offline.minilm.embed(texts)
    # The second detector's call is served from the cache: computing again would fail here.
    monkeypatch.setattr(
        offline.minilm, "_compute", lambda batch: pytest.fail(f"recomputed {len(batch)} texts")
    )
    again = offline.minilm.encode(texts[::-1])
    np.testing.assert_array_equal(again, first[::-1])
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    # ... and the cache holds digests, never the members' messages themselves.
    assert all(isinstance(k, bytes) and len(k) == 16 for k in offline.minilm._cache)
    assert not any(t.encode() in k or t in repr(k) for t in texts for k in offline.minilm._cache)


def test_fetch_detoxify_downloads_the_configured_url_and_prepares_offline_loading(
    tiny, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """The URL comes from detoxify's own MODEL_URLS; here it points at a local file."""
    import detoxify.detoxify

    from moderation.detectors.toxicity import fetch_detoxify

    _, _, model = tiny
    src = tmp_path / "src" / "toxic_original-test.ckpt"
    src.parent.mkdir()
    torch.save(detoxify_checkpoint_dict(model.state_dict(), model_type="bert-base-uncased"), src)
    monkeypatch.setitem(detoxify.detoxify.MODEL_URLS, "original", src.as_uri())
    got = fetch_detoxify(tmp_path / "models")
    assert got == tmp_path / "models" / "toxic_original-test.ckpt"
    assert (tmp_path / "models" / "toxic_original-test-hf" / "config.json").is_file()
    assert (tmp_path / "models" / "toxic_original-test-hf" / "vocab.txt").is_file()


def test_fetch_detoxify_fails_clearly_when_unreachable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import detoxify.detoxify

    from moderation.detectors.toxicity import fetch_detoxify

    monkeypatch.setitem(detoxify.detoxify.MODEL_URLS, "original", (tmp_path / "nowhere.ckpt").as_uri())
    with pytest.raises(ToxicityWeightsError, match="could not download .* offline"):
        fetch_detoxify(tmp_path / "models")
    assert not list((tmp_path / "models").glob("*.part"))


# ------------------------------------------------------------------------------------------------
# ONNX Runtime


def test_onnx_runtime_scores_agree_with_torch_fp32(tiny, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ckpt, hf, model = tiny
    texts = [*TEXTS, ("word " * 70).strip(), "I miss her every day, it still hurts"]
    want = _source_probs(model, hf, texts)
    fp32 = DetoxifyScorer(ckpt, quantize=False, runtime="onnx", cache_dir=tmp_path)
    assert fp32.runtime == "onnx"
    assert fp32.model is None
    assert fp32.session is not None
    np.testing.assert_allclose(fp32.score(texts), want, atol=1e-4)
    int8 = DetoxifyScorer(ckpt, quantize=True, runtime="onnx", cache_dir=tmp_path)
    assert int8.runtime == "onnx"
    assert "int8 on onnxruntime" in int8.description
    got = int8.score(texts)
    assert got.shape == (len(texts), 6)
    assert np.max(np.abs(got - want)) < 0.02
    assert not np.allclose(got, 0.5, atol=1e-3)  # really this model's scores, not a constant


def test_onnx_model_is_cached_reused_and_rebuilt_when_corrupt(
    tiny, tmp_path: Path, onnx_exports: list[Path], caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    ckpt, _, _ = tiny
    first = DetoxifyScorer(ckpt, runtime="onnx", cache_dir=tmp_path / "cache")
    assert len(onnx_exports) == 1
    cached = first.cache_file
    assert cached is not None
    assert cached.parent == tmp_path / "cache"
    assert cached.is_file()
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [cached.name]  # no temporary left over
    want = first.score(TEXTS)

    # what a long-lived server leaves behind: a model of an older checkpoint, not loaded for 40 days,
    # and the temporary folder of an export killed two days ago; a model used last week stays
    month_ago = datetime.now(UTC).timestamp() - 40 * 86400
    stale = tmp_path / "cache" / "detoxify-int8-0123456789abcdef01234567.onnx"
    stale.write_bytes(b"old")
    abandoned = tmp_path / "cache" / ".hearth-onnx-abandoned"
    abandoned.mkdir()
    (abandoned / "model.onnx").write_bytes(b"half")
    recent = tmp_path / "cache" / "minilm-fp32-89abcdef0123456789abcdef.onnx"
    recent.write_bytes(b"used last week")
    for path, when in (
        (stale, month_ago),
        (abandoned, month_ago + 38 * 86400),
        (recent, month_ago + 33 * 86400),
    ):
        os.utime(path, (when, when))
    os.utime(cached, (month_ago, month_ago))  # idle too, but loaded now: touched, kept

    second = DetoxifyScorer(ckpt, runtime="onnx", cache_dir=tmp_path / "cache")
    assert len(onnx_exports) == 1  # loaded from the cache, not exported again
    assert second.cache_file == cached
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted([cached.name, recent.name])
    assert cached.stat().st_mtime > month_ago + 39 * 86400
    np.testing.assert_array_equal(second.score(TEXTS), want)

    cached.write_bytes(b"not an onnx model")
    with caplog.at_level(logging.WARNING):
        third = DetoxifyScorer(ckpt, runtime="onnx", cache_dir=tmp_path / "cache")
    assert len(onnx_exports) == 2  # rebuilt
    assert third.runtime == "onnx"
    assert any("unusable" in r.getMessage() and "rebuilding" in r.getMessage() for r in caplog.records)
    np.testing.assert_allclose(third.score(TEXTS), want, atol=1e-6)
    assert cached.stat().st_size > 1000


def test_onnx_cache_key_follows_the_checkpoint_file(tiny, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ckpt, hf, model = tiny
    other = tmp_path / "tiny.ckpt"  # same stem, other weights
    torch.manual_seed(8)
    changed = transformers.BertForSequenceClassification(transformers.BertConfig.from_pretrained(hf)).eval()
    torch.save(detoxify_checkpoint_dict(changed.state_dict(), model_type=str(hf)), other)
    a = DetoxifyScorer(ckpt, runtime="onnx", cache_dir=tmp_path / "cache")
    b = DetoxifyScorer(other, runtime="onnx", cache_dir=tmp_path / "cache")
    assert a.cache_file != b.cache_file
    np.testing.assert_allclose(b.score(TEXTS), _source_probs(changed, hf, TEXTS), atol=0.02)


def test_onnx_export_that_disagrees_with_torch_falls_back_to_torch(
    tiny, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    """The exported graph is checked against torch: a wrong export is refused, and torch scores."""
    import copy
    import dataclasses

    from moderation.detectors import onnx_runtime

    ckpt, hf, model = tiny
    real = onnx_runtime._export_onnx

    def wrong_export(build, probe, out):  # type: ignore[no-untyped-def]
        other = copy.deepcopy(build.model)
        with torch.no_grad():
            other.classifier.bias += 1.0
        real(dataclasses.replace(build, model=other), probe, out)

    monkeypatch.setattr(onnx_runtime, "_export_onnx", wrong_export)
    with caplog.at_level(logging.ERROR):
        scorer = DetoxifyScorer(ckpt, quantize=False, runtime="onnx", cache_dir=tmp_path)
    assert scorer.runtime == "torch"
    assert scorer.session is None
    assert scorer.runtime_error is not None
    assert "does not reproduce torch's logits" in scorer.runtime_error
    assert "ONNX Runtime failed" in scorer.description
    assert any("using torch instead" in r.getMessage() for r in caplog.records)
    assert not list(tmp_path.glob("*.onnx"))  # nothing wrong was cached
    np.testing.assert_allclose(scorer.score(TEXTS), _source_probs(model, hf, TEXTS), atol=1e-5)


def test_weights_not_loaded_are_refused_under_onnx_before_any_export(
    tiny, tmp_path: Path, onnx_exports: list[Path]
) -> None:  # type: ignore[no-untyped-def]
    ckpt, hf, model = tiny
    bad = tmp_path / "prefixed.ckpt"
    torch.save(
        detoxify_checkpoint_dict({f"model.{k}": v for k, v in model.state_dict().items()}, str(hf)), bad
    )
    with pytest.raises(ToxicityWeightsError, match=r"did not load: .* not in the checkpoint"):
        DetoxifyScorer(bad, runtime="onnx", cache_dir=tmp_path / "cache")
    assert onnx_exports == []
    assert not (tmp_path / "cache").exists()


def test_torch_runtime_still_works_and_says_so(tiny, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ckpt, hf, model = tiny
    scorer = DetoxifyScorer(ckpt, quantize=True, runtime="torch", cache_dir=tmp_path)
    assert scorer.runtime == "torch"
    assert scorer.session is None
    assert scorer.model is not None
    assert "int8 on torch from" in scorer.description
    assert np.max(np.abs(scorer.score(TEXTS) - _source_probs(model, hf, TEXTS))) < 0.02
    assert not list(tmp_path.iterdir())  # torch caches nothing
    with pytest.raises(ValueError, match="runtime"):
        DetoxifyScorer(ckpt, runtime="tensorrt")


def test_loader_passes_the_runtime_through(tiny, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ckpt, _, _ = tiny
    det, desc = load_toxicity_detector(
        str(ckpt), logging.getLogger("test.toxicity"), quantize=True, runtime="onnx", cache_dir=tmp_path
    )
    assert isinstance(det.scorer, DetoxifyScorer)
    assert det.scorer.runtime == "onnx"
    assert desc.startswith("detoxify tiny int8 on onnxruntime")
    assert len(list(tmp_path.glob("detoxify-tiny-int8-*.onnx"))) == 1


def test_int8_only_where_the_cpu_has_int8_dot_products() -> None:
    """VNNI (x86) or the dot-product instructions (Arm) make int8 pay; without them fp32 is faster."""
    assert int8_pays_off(frozenset({"avx2", "avx512f", "avx512_vnni"})) == (
        True,
        "int8: the CPU has avx512_vnni",
    )
    assert int8_pays_off(frozenset({"asimd", "asimddp"}))[0] is True
    use_int8, why = int8_pays_off(frozenset({"avx2", "fma", "avx512f"}))
    assert not use_int8
    assert why.startswith("fp32: the CPU has no int8 dot-product instructions")
    use_int8, why = int8_pays_off()  # this machine, read by archspec: a decision and a reason either way
    assert why.startswith("int8: " if use_int8 else "fp32: ")


@pytest.mark.parametrize("cpu_int8", [True, False])
def test_auto_precision_follows_the_cpu_and_says_why(
    tiny, tmp_path: Path, monkeypatch, cpu_int8: bool
) -> None:  # type: ignore[no-untyped-def]
    import moderation.detectors.toxicity as toxicity

    monkeypatch.setattr(
        toxicity, "int8_pays_off", lambda: (cpu_int8, f"{'int8' if cpu_int8 else 'fp32'}: test CPU")
    )
    ckpt, _, _ = tiny
    det, desc = load_toxicity_detector(
        str(ckpt), logging.getLogger("test.toxicity"), quantize="auto", runtime="onnx", cache_dir=tmp_path
    )
    assert isinstance(det.scorer, DetoxifyScorer)
    assert det.scorer.quantized is cpu_int8
    precision = "int8" if cpu_int8 else "fp32"
    assert desc.startswith(f"detoxify tiny {precision} on onnxruntime")
    assert desc.endswith(f"(precision {precision}: test CPU)")
    assert len(list(tmp_path.glob(f"detoxify-tiny-{precision}-*.onnx"))) == 1


def test_loader_runs_the_offline_scorer_on_the_configured_runtime(tmp_path: Path) -> None:
    if not OFFLINE_HEAD_PATH.is_file():
        pytest.skip("offline head not trained (bench/train_offline_scorer.py)")
    det, desc = load_toxicity_detector(
        None, logging.getLogger("test.toxicity"), runtime="onnx", cache_dir=tmp_path
    )
    assert isinstance(det.scorer, OfflineEmbeddingScorer)
    assert det.scorer.minilm.runtime == "onnx"
    assert "on onnxruntime" in desc
    assert len(list(tmp_path.glob("minilm-l6-v2-fp32-*.onnx"))) == 1


def test_beside_detoxify_the_pipeline_gets_the_shipped_support_model(tiny, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The crisis and harm detectors share the shipped support model, whatever scores toxicity, and
    the description says what is in use; ``crisis_learned = false`` says that it is rules only."""
    from bridge.screening import load_pipeline
    from config.settings import ModerationSettings, Settings
    from moderation.detectors.crisis import CrisisDetector
    from moderation.detectors.harm import HarmDetector
    from moderation.detectors.onnx_runtime import int8_pays_off

    ckpt, _, _ = tiny
    settings = Settings(
        data_dir=tmp_path,
        moderation=ModerationSettings(toxicity_checkpoint=str(ckpt), toxicity_runtime="onnx"),
    )
    pipeline, description = load_pipeline(settings)
    # quantize = "auto": int8 only on a CPU with int8 dot-product instructions
    precision = "int8" if int8_pays_off()[0] else "fp32"
    assert description.startswith(f"detoxify tiny {precision} on onnxruntime")
    assert "support model: " in description
    assert "support_model.onnx" in description
    crisis = next(d for d in pipeline.detectors if isinstance(d, CrisisDetector))
    harm = next(d for d in pipeline.detectors if isinstance(d, HarmDetector))
    assert crisis.model is not None
    assert crisis.model is harm.model

    off = Settings(
        data_dir=tmp_path,
        moderation=ModerationSettings(toxicity_checkpoint=str(ckpt), crisis_learned=False),
    )
    pipeline, description = load_pipeline(off)
    assert "crisis rules only" in description
    assert not any(isinstance(d, HarmDetector) for d in pipeline.detectors)


def test_prune_cache_keeps_what_is_in_use_and_logs_what_it_cannot_remove(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from moderation.detectors import onnx_runtime

    now = 1_800_000_000.0
    keep = tmp_path / "detoxify-int8-aaaa.onnx"
    old = tmp_path / "detoxify-int8-bbbb.onnx"
    other = tmp_path / "notes.txt"  # not the cache's: never touched
    young_tmp = tmp_path / ".hearth-onnx-running"  # an export in progress right now
    for path in (keep, old, other):
        path.write_bytes(b"x")
    young_tmp.mkdir()
    for path, age_days in ((keep, 90), (old, 31), (other, 400), (young_tmp, 0.01)):
        os.utime(path, (now - age_days * 86400, now - age_days * 86400))
    assert onnx_runtime.prune_cache(tmp_path, keep=keep, now=now) == [old]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([keep.name, other.name, young_tmp.name])

    os.utime(young_tmp, (now - 2 * 86400, now - 2 * 86400))

    def refuse(path: Path, *args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(onnx_runtime.shutil, "rmtree", refuse)
    with caplog.at_level(logging.WARNING):
        assert onnx_runtime.prune_cache(tmp_path, keep=keep, now=now) == []
    assert young_tmp.is_dir()
    assert any("cannot remove" in r.getMessage() for r in caplog.records)
