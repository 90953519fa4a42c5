"""Davidson et al. (ICWSM 2017) "Automated Hate Speech Detection and the Problem of Offensive Language":
24,783 tweets with CrowdFlower votes (MIT licence), read from ``../shared/data/davidson-offensive/``
and never copied into the project.

One fixed split shared by the offline scorer's training and by the evaluation, so that the held-out
part is never trained on: stratified by class, 20% held out, seed :data:`SPLIT_SEED`.
"""

from __future__ import annotations

import csv
import html
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = ROOT.parent / "shared" / "data"
DAVIDSON_CSV = DATA_DIR / "davidson-offensive" / "labeled_data.csv"
HATECHECK_CSV = DATA_DIR / "hatecheck" / "test_suite_cases.csv"
SPLIT_SEED = 20170531
HELDOUT_FRACTION = 0.2
CLASS_NAMES = {0: "hate", 1: "offensive", 2: "neither"}


@dataclass(frozen=True)
class Tweet:
    text: str
    cls: int  # 0 hate speech, 1 offensive language, 2 neither (majority of annotators)
    p_hate: float  # share of annotators voting hate speech
    p_offensive: float
    p_neither: float


def clean_tweet(text: str) -> str:
    """Strip Twitter furniture (RT, @handles, URLs, HTML entities) that chat messages do not have."""
    text = html.unescape(text)
    text = re.sub(r"\bRT\b", "", text)
    text = re.sub(r"@\w+:?", "", text)
    text = re.sub(r"https?://\S+", "", text)
    return re.sub(r"\s+", " ", text).strip(" :!")


def load_davidson(path: Path = DAVIDSON_CSV) -> list[Tweet]:
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    out = []
    for r in rows:
        n = int(r["count"])
        out.append(
            Tweet(
                text=clean_tweet(r["tweet"]),
                cls=int(r["class"]),
                p_hate=int(r["hate_speech"]) / n,
                p_offensive=int(r["offensive_language"]) / n,
                p_neither=int(r["neither"]) / n,
            )
        )
    return out


def split_indices(tweets: list[Tweet], seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) indices: per class, a seeded permutation, the first 20% held out."""
    rng = np.random.default_rng(seed)
    classes = np.array([t.cls for t in tweets])
    train, held = [], []
    for c in sorted(set(classes.tolist())):
        idx = rng.permutation(np.flatnonzero(classes == c))
        k = int(round(len(idx) * HELDOUT_FRACTION))
        held.append(idx[:k])
        train.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(held))
