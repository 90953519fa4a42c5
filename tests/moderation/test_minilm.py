"""MiniLM on torch and on ONNX Runtime: the same embeddings, exported once and cached; torch if ONNX fails."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from moderation.detectors.minilm import MiniLM

TEXTS = [
    "I can't see a way forward anymore",
    "my sister came to visit, it was lovely",
    "x",
    "  spaces around  ",
    ("a much longer message " * 40).strip(),
]


@pytest.fixture(scope="module")
def on_torch() -> MiniLM:
    return MiniLM()


@pytest.fixture(scope="module")
def on_onnx(tmp_path_factory: pytest.TempPathFactory) -> MiniLM:
    return MiniLM(runtime="onnx", cache_dir=tmp_path_factory.mktemp("minilm-onnx"))


def test_onnx_runtime_gives_sentence_transformers_own_embeddings(on_torch: MiniLM, on_onnx: MiniLM) -> None:
    """fp32 under ONNX Runtime: the offline head was trained on
    these embeddings, so they must be the same, padding and stripping included."""
    assert on_onnx.runtime == "onnx"
    assert on_onnx.session is not None
    assert on_onnx.engine.startswith("onnxruntime ")
    assert on_onnx.cache_file is not None
    assert on_onnx.cache_file.name.startswith("minilm-l6-v2-fp32-")
    assert on_torch.runtime == "torch"
    assert on_torch.engine == "torch"
    reference = on_torch.model.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    np.testing.assert_allclose(on_torch.embed(TEXTS), reference, atol=1e-5)
    np.testing.assert_allclose(on_onnx.embed(TEXTS), reference, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(on_onnx.embed(TEXTS), axis=1), 1.0, atol=1e-5)


def test_onnx_model_is_cached_and_reused(on_onnx: MiniLM, onnx_exports: list[Path]) -> None:
    cached = on_onnx.cache_file
    assert cached is not None
    again = MiniLM(runtime="onnx", cache_dir=cached.parent)
    assert onnx_exports == []
    assert again.cache_file == cached
    np.testing.assert_array_equal(again.embed(TEXTS), on_onnx.embed(TEXTS))


def test_falls_back_to_torch_loudly_when_onnx_fails(
    on_torch: MiniLM, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from moderation.detectors import onnx_runtime

    def broken(build, probe, out):  # type: ignore[no-untyped-def]
        raise RuntimeError("exporter unavailable")

    monkeypatch.setattr(onnx_runtime, "_export_onnx", broken)
    with caplog.at_level(logging.ERROR):
        fallen = MiniLM(runtime="onnx", cache_dir=tmp_path)
    assert fallen.runtime == "torch"
    assert fallen.session is None
    assert fallen.runtime_error is not None
    assert "exporter unavailable" in fallen.runtime_error
    assert fallen.engine == "torch (ONNX Runtime failed)"
    assert any("using torch instead" in r.getMessage() for r in caplog.records)
    assert not list(tmp_path.glob("*.onnx"))
    np.testing.assert_allclose(fallen.embed(TEXTS), on_torch.embed(TEXTS), atol=1e-6)
    with pytest.raises(ValueError, match="runtime"):
        MiniLM(runtime="tensorrt")


def test_an_export_that_disagrees_with_torch_is_refused(
    on_torch: MiniLM, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The export is checked against torch's outputs: a graph off by a little is not used or cached."""
    import copy
    import dataclasses

    import torch

    from moderation.detectors import onnx_runtime

    real = onnx_runtime._export_onnx

    def wrong_export(build, probe, out):  # type: ignore[no-untyped-def]
        other = copy.deepcopy(build.model)
        with torch.no_grad():
            other.encoder.layer[5].output.dense.bias[:8] += (
                0.5  # not a uniform shift: LayerNorm would undo that
            )
        real(dataclasses.replace(build, model=other), probe, out)

    monkeypatch.setattr(onnx_runtime, "_export_onnx", wrong_export)
    fallen = MiniLM(runtime="onnx", cache_dir=tmp_path)
    assert fallen.runtime == "torch"
    assert fallen.runtime_error is not None
    assert "does not reproduce torch's last_hidden_state" in fallen.runtime_error
    assert not list(tmp_path.glob("*.onnx"))
    np.testing.assert_allclose(fallen.embed(TEXTS), on_torch.embed(TEXTS), atol=1e-6)
