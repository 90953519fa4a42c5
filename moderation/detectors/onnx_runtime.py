"""Running a verified torch model with ONNX Runtime: export once, check against torch, cache on disk.

Used for Detoxify (int8-quantised) and for all-MiniLM-L6-v2 (fp32, so that its embeddings, on which
the offline head was trained, do not change). An :class:`OnnxBuild`
says how to call the model and tokenise for it; :func:`onnx_session` exports it with the TorchScript
exporter (offline, deterministic), refuses an export that does not reproduce torch's outputs on a
probe batch, optionally quantises it, and caches it under a key of the weights' bytes, the model's
configuration and every library version involved, so restarts load in about a second. Every load
touches its file; files of this cache unused for :data:`CACHE_MAX_IDLE_DAYS` (other checkpoints, older
library versions) and temporary export folders left by a process killed mid-export are removed, so a
long-lived server's disk does not fill with models it no longer runs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


class OnnxExportError(RuntimeError):
    """The exported graph is unusable: wrong shapes, non-finite values, or not what torch computes."""


ONNX_INPUTS: tuple[str, ...] = ("input_ids", "attention_mask", "token_type_ids")
ONNX_RECIPE = 2
"""Version of the export + quantisation recipe below; part of the cache key, so bumping it rebuilds."""

CACHE_MAX_IDLE_DAYS = 30
"""A cached model not loaded for this long is removed from the cache (it is rebuilt if needed again)."""
_TMP_PREFIX = ".hearth-onnx-"
_TMP_MAX_AGE_S = 24 * 3600  # an export takes minutes: an older temporary folder is an abandoned one

ORT_ALLOW_SPINNING = False
"""Let ONNX Runtime's intra-op threads spin between operators. On cores shared with other work,
spinning threads steal the time they wait for (bench/screening.py measured no gain from it here)."""

INT8_DOT_PRODUCT = frozenset({"avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm"})
"""CPU features (x86 VNNI and AMX, Arm dot product and int8 matrix multiply) with which ONNX Runtime's
int8 matrix products beat fp32. Without them int8 is slower: bench/screening.py measured the int8
bert-base Detoxify at 32 msg/s against 41 msg/s for fp32 on an AMD EPYC with AVX2 and no VNNI."""


def int8_pays_off(features: frozenset[str] | None = None) -> tuple[bool, str]:
    """Whether to run a quantisable model int8 (True) or fp32 on this CPU, and why, for the log and
    /healthz. ``features`` are the CPU's feature flags (default: detected by archspec); when they
    cannot be read, int8 (the smaller model, and the faster one on most current CPUs)."""
    if features is None:
        try:
            from archspec.cpu.detect import detected_info

            features = frozenset(detected_info().features)
        except Exception as exc:  # an unknown platform: say so, pick the smaller model
            return True, f"int8: the CPU's features could not be read ({exc})"
    found = sorted(INT8_DOT_PRODUCT & features)
    if found:
        return True, f"int8: the CPU has {', '.join(found)}"
    return False, "fp32: the CPU has no int8 dot-product instructions (VNNI), where int8 runs slower"


# Probe texts for checking an export: the export is traced on two of them (so padding is in the
# trace), checked on all of them (another batch size and length than traced).
_PROBE_TEXTS = (
    "hello",
    "thank you all for listening tonight, it really helped me to get through the week",
    "you are not alone in this",
)


@dataclass(frozen=True)
class OnnxBuild:
    """One torch model to run with ONNX Runtime: how to call it, tokenise for it and key its cache.

    ``forward(model, **feeds)`` returns the tensors named ``outputs`` from the graph inputs
    :data:`ONNX_INPUTS`; it is what gets exported and what the export is checked against.
    ``feeds(texts)`` tokenises texts into those inputs (int64 arrays). ``name`` prefixes the cached
    file; ``sources`` (weight files) and ``config`` (the model's configuration) key it.
    """

    model: Any
    forward: Callable[..., tuple[Any, ...]]
    feeds: Callable[[Sequence[str]], dict[str, np.ndarray]]
    outputs: tuple[str, ...]
    name: str
    sources: tuple[Path, ...]
    config: Mapping[str, Any]


def onnx_feeds(padded: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The ONNX graph's int64 inputs from a padded tokenizer batch (zeros where it has no token types)."""
    ids = np.asarray(padded["input_ids"], dtype=np.int64)
    feeds = {"input_ids": ids, "attention_mask": np.asarray(padded["attention_mask"], dtype=np.int64)}
    types = padded.get("token_type_ids")
    feeds["token_type_ids"] = np.zeros_like(ids) if types is None else np.asarray(types, dtype=np.int64)
    return feeds


def _torch_outputs(build: OnnxBuild, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    import torch

    with torch.inference_mode():
        out = build.forward(build.model, **{k: torch.from_numpy(v) for k, v in feeds.items()})
    return [t.float().numpy() for t in out]


def _export_onnx(build: OnnxBuild, probe: Mapping[str, np.ndarray], out: Path) -> None:
    """Export the fp32 torch model to ONNX (TorchScript exporter: offline, deterministic, no
    onnxscript), with dynamic batch and sequence axes on every input and output."""
    import torch

    class Graph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = build.model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> tuple[Any, ...]:
            return build.forward(
                self.model, input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            )

    axes: dict[str, dict[int, str]] = {
        name: {0: "batch", 1: "sequence"} for name in (*ONNX_INPUTS, *build.outputs)
    }
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice and tracer warnings
        torch.onnx.export(
            Graph().eval(),
            tuple(torch.from_numpy(probe[name]) for name in ONNX_INPUTS),
            str(out),
            input_names=list(ONNX_INPUTS),
            output_names=list(build.outputs),
            dynamic_axes=axes,
            opset_version=17,
            do_constant_folding=True,
            dynamo=False,
        )


def ort_session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    ort.disable_telemetry_events()  # nothing about this deployment is reported anywhere
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if ORT_ALLOW_SPINNING else "0")
    # int8 matrix products exact on every x86 CPU: without VNNI, ONNX Runtime's fast U8S8 kernels sum
    # pairs of products in 16 bits and may saturate, so the same model decided some messages
    # differently on a CPU with VNNI and one without. This selects the exact U8U8 kernels there (it
    # changes nothing on CPUs with VNNI, or for fp32 models).
    options.add_session_config_entry("session.x64quantprecision", "1")
    options.log_severity_level = 3  # errors only
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _run_probe(
    session: Any, build: OnnxBuild, probe: Mapping[str, np.ndarray], want: Sequence[np.ndarray]
) -> list[np.ndarray]:
    """Run ``session`` on the probe; refuse outputs of other shapes than torch's, or not finite."""
    got = [np.asarray(x) for x in session.run(list(build.outputs), dict(probe))]
    for name, g, w in zip(build.outputs, got, want, strict=True):
        if g.shape != w.shape or not np.isfinite(g).all():
            raise OnnxExportError(
                f"ONNX model gives {name} of shape {g.shape} (want {w.shape}) or non-finite values"
            )
    return got


def onnx_cache_key(build: OnnxBuild, quantize: bool) -> str:
    """SHA-256 over the source weight files, the model's configuration, the versions of everything
    that builds or runs the ONNX model, the outputs, the recipe version and the precision."""
    import onnx
    import onnxruntime
    import torch
    import transformers

    digest = hashlib.sha256()
    for source in build.sources:
        with source.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    meta = {
        "recipe": ONNX_RECIPE,
        "int8": quantize,
        "outputs": build.outputs,
        "config": {k: v for k, v in build.config.items() if k != "_name_or_path"},
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
    }
    digest.update(json.dumps(meta, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def onnx_session(
    build: OnnxBuild,
    *,
    quantize: bool = True,
    cache_dir: str | Path | None = None,
    threads: int | None = None,
) -> tuple[Any, Path | None]:
    """An ONNX Runtime session running ``build.model`` (a verified fp32 torch model), and its cached file.

    Reuses ``<cache_dir>/<name>-<int8|fp32>-<key>.onnx`` (key: :func:`onnx_cache_key`) when it
    loads and runs; otherwise (absent, unreadable, corrupt) builds it: exports the model, refuses
    with :class:`OnnxExportError` unless the exported graph reproduces torch's outputs on a
    probe batch, quantises weights to int8 (``quantize``: ``onnxruntime.quantization.quantize_dynamic``,
    QInt8) and moves the file into place atomically. Without ``cache_dir`` it is built in a
    temporary directory and not kept. ``threads``: intra-op threads, default every core this
    process may use.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    threads = threads or len(os.sched_getaffinity(0))
    check = build.feeds(_PROBE_TEXTS)
    want = _torch_outputs(build, check)
    target: Path | None = None
    if cache_dir is not None:
        cache = Path(cache_dir)
        cache.mkdir(parents=True, exist_ok=True)
        key = onnx_cache_key(build, quantize)
        target = cache / f"{build.name}-{'int8' if quantize else 'fp32'}-{key[:24]}.onnx"
        if target.is_file():
            try:
                session = ort_session(target, threads)
                _run_probe(session, build, check, want)
                os.utime(target)  # in use: keeps it out of prune_cache's reach
                prune_cache(cache, keep=target)
                return session, target
            except Exception as exc:
                log.warning("cached ONNX model %s is unusable (%s); rebuilding it", target, exc)
    with tempfile.TemporaryDirectory(prefix=_TMP_PREFIX, dir=cache_dir) as tmp:
        fp32 = Path(tmp) / "model.onnx"
        _export_onnx(build, build.feeds(_PROBE_TEXTS[:2]), fp32)
        got = _run_probe(ort_session(fp32, threads), build, check, want)
        for name, g, w in zip(build.outputs, got, want, strict=True):
            if not np.allclose(g, w, rtol=1e-3, atol=1e-3):
                raise OnnxExportError(
                    f"the ONNX export of {build.name} does not reproduce torch's {name} on the probe "
                    f"batch (largest difference {float(np.max(np.abs(g - w))):.3g})"
                )
        built = fp32
        if quantize:
            built = Path(tmp) / "model.int8.onnx"
            quantize_dynamic(fp32, built, weight_type=QuantType.QInt8)
        session = ort_session(built, threads)  # reads the whole file: it may move or go after this
        _run_probe(session, build, check, want)
        if target is not None:
            os.replace(built, target)  # atomic: same directory, so same filesystem
    if target is not None:
        prune_cache(target.parent, keep=target)
    return session, target


def prune_cache(
    cache: Path, *, keep: Path, max_idle_days: float = CACHE_MAX_IDLE_DAYS, now: float | None = None
) -> list[Path]:
    """Remove from ``cache`` the ``.onnx`` models not loaded for ``max_idle_days`` (every load touches
    its file) and temporary export folders older than a day, never ``keep``; returns what it removed.
    Anything it cannot remove is logged and left."""
    now = time.time() if now is None else now
    removed: list[Path] = []
    try:
        entries = sorted(cache.iterdir())
    except OSError as exc:
        log.warning("ONNX model cache: cannot list %s (%s)", cache, exc)
        return removed
    for path in entries:
        if path == keep:
            continue
        try:
            idle = now - path.stat().st_mtime
            if path.suffix == ".onnx" and path.is_file() and idle > max_idle_days * 86400:
                path.unlink()
            elif path.name.startswith(_TMP_PREFIX) and path.is_dir() and idle > _TMP_MAX_AGE_S:
                shutil.rmtree(path)
            else:
                continue
        except OSError as exc:
            log.warning("ONNX model cache: cannot remove %s (%s)", path, exc)
            continue
        removed.append(path)
    if removed:
        log.info(
            "ONNX model cache %s: removed %d unused entr%s (%s)",
            cache,
            len(removed),
            "y" if len(removed) == 1 else "ies",
            ", ".join(p.name for p in removed),
        )
    return removed


def onnx_or_torch(
    what: str,
    build: Callable[[], OnnxBuild],
    *,
    quantize: bool,
    cache_dir: str | Path | None,
    threads: int | None,
) -> tuple[Any, Path | None, str | None, str]:
    """``(session, cached file, error, engine)``: :func:`onnx_session` on ``build()``, or, when that
    fails, ``(None, None, error, ...)`` with the error logged, so the caller runs torch instead
    (screening must go on: torch, loudly). ``engine`` names what runs the model, for ``/healthz``."""
    try:
        session, cache_file = onnx_session(build(), quantize=quantize, cache_dir=cache_dir, threads=threads)
    except Exception as exc:
        log.error("%s: ONNX Runtime path failed, using torch instead: %s", what, exc)
        return None, None, f"{type(exc).__name__}: {exc}", "torch (ONNX Runtime failed)"
    import onnxruntime

    return session, cache_file, None, f"onnxruntime {onnxruntime.__version__}"
