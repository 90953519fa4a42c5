"""Fixtures shared by the moderation tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def onnx_exports(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The files ONNX models are exported to from now on in this test (exports still happen)."""
    from moderation.detectors import onnx_runtime

    calls: list[Path] = []
    real = onnx_runtime._export_onnx

    def counting(build, probe, out):  # type: ignore[no-untyped-def]
        calls.append(out)
        real(build, probe, out)

    monkeypatch.setattr(onnx_runtime, "_export_onnx", counting)
    return calls
