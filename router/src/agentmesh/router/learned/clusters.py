"""Prompt clusters: spherical k-means over hashed TF-IDF vectors, and fast assignment.

Prompts that read alike tend to be answered alike by the same models; the quality model keeps
its statistics per cluster. Training runs offline (numpy, sparse rows, k-means++ seeding with
a fixed seed); assignment runs before every call and costs one gather and one small product:
the centroids are held as a ``(dim, k)`` matrix, so a prompt's ``n`` words read ``n`` rows.

Centroids are stored sparsely (their heaviest ``keep`` buckets, renormalised): a route table
carries a few thousand numbers instead of ``dim x k``.

Example:
    >>> from agentmesh.router.learned.hashing import TextHasher
    >>> hasher = TextHasher(dim=256)
    >>> texts = ["add two numbers", "sum of numbers", "capital of france", "capital city"]
    >>> clusters = Clusters.fit([hasher.vector(t) for t in texts], k=2, dim=256, seed=1)
    >>> clusters.assign(hasher.vector("add numbers")) == clusters.assign(hasher.vector("sum"))
    True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from agentmesh.router.learned.hashing import SparseVector

__all__ = ["Clusters"]

_F32 = np.float32
Matrix = npt.NDArray[np.float32]


class _Rows:
    """Sparse rows (CSR) of unit vectors, for training."""

    def __init__(self, vectors: Sequence[SparseVector]) -> None:
        lengths = np.fromiter((len(v.indices) for v in vectors), np.int64, len(vectors))
        self.indptr = np.concatenate([[0], np.cumsum(lengths)])
        self.indices = np.fromiter(
            (i for v in vectors for i in v.indices), np.int64, int(self.indptr[-1])
        )
        self.data = np.fromiter((w for v in vectors for w in v.weights), _F32, len(self.indices))
        self.row = np.repeat(np.arange(len(vectors)), lengths)
        self.n = len(vectors)

    def dot(self, columns: Matrix) -> Matrix:
        """Return ``rows @ columns`` for a dense ``(dim, k)`` matrix."""
        out = np.zeros((self.n, columns.shape[1]), _F32)
        np.add.at(out, self.row, self.data[:, None] * columns[self.indices])
        return out

    def sums(self, labels: npt.NDArray[np.int64], k: int, dim: int) -> Matrix:
        """Return the sum of the rows of each label, as a dense ``(dim, k)`` matrix."""
        out = np.zeros((dim, k), _F32)
        np.add.at(out, (self.indices, labels[self.row]), self.data)
        return out


def _unit_columns(matrix: Matrix) -> Matrix:
    norms = np.linalg.norm(matrix, axis=0)
    norms[norms == 0] = 1.0
    return (matrix / norms).astype(_F32)


class Clusters:
    """Cluster centroids and the assignment of a prompt vector to its nearest one.

    Args:
        centroids: A ``(dim, k)`` matrix of unit-length columns.
    """

    def __init__(self, centroids: Matrix) -> None:
        self._c = np.ascontiguousarray(centroids, dtype=_F32)
        self._ones = np.ones(256, _F32)  # sums rows in one product (faster than .sum)
        self._take = self._c.take

    def bind(self, idf: Sequence[float] | None) -> None:
        """Pre-multiply the centroids by the IDF weights, for :meth:`assign_buckets`.

        Args:
            idf: The hasher's IDF weights (``None``: all ones).
        """
        weighted = self._c if idf is None else self._c * np.asarray(idf, _F32)[:, None]
        self._take = np.ascontiguousarray(weighted).take

    def assign_buckets(self, buckets: Sequence[int]) -> int:
        """Return the cluster of a text given its word buckets (repeats count).

        Same answer as :meth:`assign` on the text's TF-IDF vector (the argmax does not depend
        on the vector's length), without building the vector: one gather and one sum.

        Args:
            buckets: The bucket of each word (:meth:`TextHasher.buckets`).

        Returns:
            The cluster number; 0 for no word.
        """
        n = len(buckets)
        if not n:
            return 0
        if n > len(self._ones):
            self._ones = np.ones(n, _F32)
        # take: faster than fancy indexing; a product with ones: faster than .sum(axis=0)
        return int((self._ones[:n] @ self._take(buckets, 0)).argmax())

    @property
    def k(self) -> int:
        """Number of clusters."""
        return int(self._c.shape[1])

    @property
    def dim(self) -> int:
        """Dimension of the vectors."""
        return int(self._c.shape[0])

    def assign(self, vector: SparseVector) -> int:
        """Return the cluster whose centroid is nearest (largest cosine) to the vector.

        Args:
            vector: A unit-length prompt vector.

        Returns:
            The cluster number; 0 for an empty vector.
        """
        if not vector.indices:
            return 0
        scores = np.asarray(vector.weights, _F32) @ self._c[list(vector.indices)]
        return int(scores.argmax())

    def assign_many(self, vectors: Sequence[SparseVector]) -> list[int]:
        """Return the cluster of each vector (vectorised; for training and replay).

        Args:
            vectors: Unit-length prompt vectors.

        Returns:
            One cluster number per vector.
        """
        if not vectors:
            return []
        labels = _Rows(vectors).dot(self._c).argmax(axis=1)
        return [int(x) for x in labels]

    @classmethod
    def fit(
        cls,
        vectors: Sequence[SparseVector],
        *,
        k: int,
        dim: int,
        seed: int = 0,
        iterations: int = 25,
    ) -> Clusters:
        """Fit ``k`` clusters by spherical k-means with k-means++ seeding.

        Args:
            vectors: Unit-length training vectors (at least one).
            k: Number of clusters (capped at the number of distinct vectors).
            dim: Dimension of the vectors.
            seed: Seed of the random seeding: the same data and seed give the same clusters.
            iterations: Most Lloyd iterations (stops earlier once assignments are stable).

        Returns:
            The clusters.

        Raises:
            ValueError: No vectors, or ``k`` is not positive.
        """
        if not vectors or k <= 0:
            raise ValueError("clustering needs at least one vector and k > 0")
        rows = _Rows(vectors)
        rng = np.random.default_rng(seed)
        k = min(k, rows.n)
        first = int(rng.integers(rows.n))
        chosen = [first]
        centroids = rows.sums((np.arange(rows.n) == first).astype(np.int64), 2, dim)[:, 1:]
        best = rows.dot(centroids)[:, 0]
        for _ in range(1, k):
            distance = np.clip(1.0 - best, 0.0, None).astype(np.float64)
            total = float(distance.sum())
            if total <= 0.0:
                break
            pick = int(rng.choice(rows.n, p=distance / total))
            chosen.append(pick)
            column = rows.sums((np.arange(rows.n) == pick).astype(np.int64), 2, dim)[:, 1:]
            centroids = np.hstack([centroids, column])
            best = np.maximum(best, rows.dot(column)[:, 0])
        centroids = _unit_columns(centroids)
        labels = np.full(rows.n, -1, np.int64)
        for _ in range(iterations):
            new = rows.dot(centroids).argmax(axis=1).astype(np.int64)
            if np.array_equal(new, labels):
                break
            labels = new
            sums = rows.sums(labels, centroids.shape[1], dim)
            empty = np.linalg.norm(sums, axis=0) == 0
            sums[:, empty] = centroids[:, empty]
            centroids = _unit_columns(sums)
        return cls(centroids)

    def to_dict(self, *, keep: int = 512) -> dict[str, Any]:
        """Return the centroids as JSON-ready sparse columns (their ``keep`` heaviest buckets).

        Args:
            keep: Buckets kept per centroid.

        Returns:
            ``{"dim": …, "centroids": [[[bucket, weight], …], …]}``.
        """
        columns: list[list[list[float]]] = []
        for j in range(self.k):
            column = self._c[:, j]
            top = np.argsort(-column)[:keep]
            top = top[column[top] > 0]
            columns.append([[int(i), round(float(column[i]), 6)] for i in sorted(top.tolist())])
        return {"dim": self.dim, "centroids": columns}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Clusters:
        """Rebuild clusters from :meth:`to_dict` output (renormalising the kept buckets).

        Args:
            raw: The dict.

        Returns:
            The clusters.

        Raises:
            ValueError: The dict is malformed.
        """
        dim = raw.get("dim")
        columns = raw.get("centroids")
        if not isinstance(dim, int) or dim <= 0 or not isinstance(columns, list) or not columns:
            raise ValueError("clusters need a positive 'dim' and a non-empty 'centroids' list")
        matrix = np.zeros((dim, len(cast("list[object]", columns))), _F32)
        for j, column in enumerate(cast("list[object]", columns)):
            if not isinstance(column, list):
                raise ValueError(f"centroid {j} is not a list of [bucket, weight] pairs")
            for pair in cast("list[object]", column):
                if not isinstance(pair, list) or len(cast("list[object]", pair)) != 2:
                    raise ValueError(f"centroid {j} has an entry that is not [bucket, weight]")
                bucket, weight = cast("list[object]", pair)
                if not isinstance(bucket, int) or not 0 <= bucket < dim:
                    raise ValueError(f"centroid {j} names bucket {bucket!r} outside 0..{dim - 1}")
                if not isinstance(weight, int | float):
                    raise ValueError(f"centroid {j} has a weight that is not a number")
                matrix[bucket, j] = float(weight)
        return cls(_unit_columns(matrix))
