"""The peer: a plain kNN router over TF-IDF features (neighbours' mean correctness and cost)."""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter

import numpy as np

from _router.data import Prompt

_WORD = re.compile(r"[a-z0-9]+")


class KnnRouter:
    """kNN over TF-IDF of word unigrams and bigrams (vocabulary of the train prompts)."""

    def __init__(self, train: list[Prompt], models: list[str], k: int = 40) -> None:
        self.models = models
        self.k = k
        docs = [self._grams(p.text) for p in train]
        df: Counter[str] = Counter()
        for d in docs:
            df.update(set(d))
        self.vocab = {t: i for i, t in enumerate(sorted(df))}
        n = len(train)
        self.idf = np.array([math.log((1 + n) / (1 + df[t])) + 1 for t in sorted(df)], np.float32)
        self.x = self._matrix(docs)
        self.quality = np.array([[p.correct[m] for m in models] for p in train], np.float32)
        self.cost = np.array([[p.cost[m] for m in models] for p in train], np.float32)

    @staticmethod
    def _grams(text: str) -> Counter[str]:
        words = _WORD.findall(text.lower())
        return Counter(words + [f"{a} {b}" for a, b in itertools.pairwise(words)])

    def _matrix(self, docs: list[Counter[str]]) -> np.ndarray:
        x = np.zeros((len(docs), len(self.vocab)), np.float32)
        for i, d in enumerate(docs):
            for t, c in d.items():
                j = self.vocab.get(t)
                if j is not None:
                    x[i, j] = (1 + math.log(c)) * self.idf[j]
        x /= np.linalg.norm(x, axis=1, keepdims=True) + 1e-9
        return x

    def predict(self, test: list[Prompt]) -> tuple[np.ndarray, np.ndarray]:
        """Expected correctness and cost of each model on each test prompt."""
        q = self._matrix([self._grams(p.text) for p in test])
        sim = q @ self.x.T
        nn = np.argsort(-sim, axis=1)[:, : self.k]
        return self.quality[nn].mean(axis=1), self.cost[nn].mean(axis=1)
