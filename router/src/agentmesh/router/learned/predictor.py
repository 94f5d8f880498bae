"""The learned predictor: prompt text → cluster → expected quality, cost and latency per model.

A :class:`Predictor` bundles the three learned parts (the hashing vocabulary's IDF weights, the
prompt clusters and the :class:`~agentmesh.router.learned.quality.QualityModel`) and is what the
route table carries (``RouteTable.predictor``, the JSON of :meth:`Predictor.to_dict`).

:func:`train_predictor` fits it offline from logged examples: each a prompt, its task class and
the outcomes of the models that answered it (one model, as in production logs, or all of them,
as in RouterBench). The text is only read here and in :meth:`Predictor.cluster_of`; what leaves
the process is the cluster number.

Example:
    >>> examples = [
    ...     Example("What is 2 + 2?", "math", {"small": Outcome(1.0, 0.0001), "big": Outcome(1.0, 0.01)}),
    ...     Example("Prove Fermat's last theorem", "math", {"small": Outcome(0.0, 0.0001), "big": Outcome(1.0, 0.01)}),
    ... ]
    >>> predictor = train_predictor(examples, clusters=2, dim=1024)
    >>> Predictor.from_dict(predictor.to_dict()).quality.models()
    ['big', 'small']
"""  # noqa: E501

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, cast

from agentmesh.core.log import get_logger
from agentmesh.router.learned.hashing import DEFAULT_DIM, DEFAULT_TAIL_CHARS, TextHasher
from agentmesh.router.learned.quality import QualityModel, Shrinkage

__all__ = ["Example", "Outcome", "Predictor", "train_predictor"]

_FIRST_TAIL_CHARS: Final = 400
"""The tail read by a hasher whose dict does not say (the first default)."""

_log = get_logger(__name__)

FORMAT: Final = "agentmesh.cluster-quality/1"
"""The ``format`` tag of :meth:`Predictor.to_dict` output."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one model did on one prompt.

    Attributes:
        quality: Quality in [0, 1] (1: correct or fully satisfactory).
        cost_usd: What the call cost, if known.
        latency_s: How long it took, if known.
    """

    quality: float
    cost_usd: float | None = None
    latency_s: float | None = None


@dataclass(frozen=True, slots=True)
class Example:
    """One logged prompt and the outcomes of the models that answered it.

    Attributes:
        text: The prompt text (read for clustering only).
        task_class: Its task class, if any.
        outcomes: Model name → outcome.
    """

    text: str
    task_class: str | None
    outcomes: Mapping[str, Outcome] = field(default_factory=lambda: {})


class Predictor:
    """Hasher, clusters and quality model together.

    Args:
        quality: The quality model.
        hasher: The text hasher (its IDF weights learned with the clusters).
        clusters: The prompt clusters; ``None``: every prompt is cluster 0 (the model then
            learns per task class only, and no text is read at all).
    """

    def __init__(
        self,
        quality: QualityModel,
        hasher: TextHasher | None = None,
        clusters: Any | None = None,
    ) -> None:
        self.quality = quality
        self.hasher = hasher
        self.clusters = clusters
        # Bound once: cluster_of runs before every routed call.
        self._read: Callable[[str], list[int]] | None = None
        self._assign: Callable[[list[int]], int] | None = None
        if clusters is not None and hasher is not None:
            clusters.bind(hasher.idf)
            self._read, self._assign = hasher.buckets, clusters.assign_buckets

    @property
    def reads_text(self) -> bool:
        """Whether :meth:`cluster_of` needs the prompt text."""
        return self.clusters is not None and self.hasher is not None

    @property
    def text_chars(self) -> int:
        """Characters of the prompt's end :meth:`cluster_of` reads (0: it reads no text)."""
        return self.hasher.tail_chars if self.clusters is not None and self.hasher else 0

    def cluster_of(self, text: str) -> int:
        """Return the prompt's cluster (0 without clusters or text).

        Args:
            text: The prompt text.

        Returns:
            The cluster number.
        """
        assign = self._assign
        if assign is None or not text:
            return 0
        return assign(self._read(text))  # pyright: ignore[reportOptionalCall]  # set together

    def to_dict(self) -> dict[str, Any]:
        """Return the predictor as a JSON-ready dict (the route table's ``predictor``).

        Returns:
            The dict.
        """
        out: dict[str, Any] = {"format": FORMAT, "quality": self.quality.to_dict()}
        if self.clusters is not None and self.hasher is not None:
            out["hasher"] = {
                "dim": self.hasher.dim,
                "tail_chars": self.hasher.tail_chars,
                "idf": _sparse_idf(self.hasher),
            }
            out["clusters"] = self.clusters.to_dict()
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Predictor:
        """Rebuild a predictor from :meth:`to_dict` output.

        Without numpy installed, the clusters cannot be used: the predictor then learns and
        predicts per task class only (logged once).

        Args:
            raw: The dict.

        Returns:
            The predictor.

        Raises:
            ValueError: The dict is malformed or of another format.
        """
        if raw.get("format") != FORMAT:
            raise ValueError(f"predictor format {raw.get('format')!r} is not {FORMAT!r}")
        quality = raw.get("quality")
        if not isinstance(quality, Mapping):
            raise ValueError("predictor.quality must be an object")
        model = QualityModel.from_dict(cast("Mapping[str, Any]", quality))
        hasher_raw = raw.get("hasher")
        clusters_raw = raw.get("clusters")
        if not isinstance(hasher_raw, Mapping) or not isinstance(clusters_raw, Mapping):
            return cls(model)
        hasher = _hasher_from(cast("Mapping[str, Any]", hasher_raw))
        try:
            from agentmesh.router.learned.clusters import Clusters
        except ImportError:  # numpy is an optional dependency of the router
            _log.warning(
                "router.clusters_unavailable",
                detail="numpy is not installed: routing learns per task class only "
                "(install agentmesh-router[learned])",
            )
            return cls(model)
        clusters = Clusters.from_dict(cast("Mapping[str, Any]", clusters_raw))
        if clusters.dim != hasher.dim:
            raise ValueError(f"clusters have dim {clusters.dim}, the hasher {hasher.dim}")
        return cls(model, hasher, clusters)


def _sparse_idf(hasher: TextHasher) -> dict[str, Any]:
    idf = hasher.idf
    if idf is None:
        return {"default": 1.0, "buckets": []}
    default = max(idf)
    return {
        "default": round(default, 5),
        "buckets": [[i, round(w, 5)] for i, w in enumerate(idf) if w != default],
    }


def _hasher_from(raw: Mapping[str, Any]) -> TextHasher:
    dim = raw.get("dim")
    tail = raw.get("tail_chars", _FIRST_TAIL_CHARS)
    idf_raw = raw.get("idf", {})
    if not isinstance(dim, int) or not isinstance(tail, int) or not isinstance(idf_raw, Mapping):
        raise ValueError("predictor.hasher needs integer 'dim' and 'tail_chars' and an 'idf'")
    idf_map = cast("Mapping[str, Any]", idf_raw)
    default = idf_map.get("default", 1.0)
    buckets = idf_map.get("buckets", [])
    if not isinstance(default, int | float) or not isinstance(buckets, list):
        raise ValueError("predictor.hasher.idf needs a numeric 'default' and a 'buckets' list")
    idf = [float(default)] * dim
    for pair in cast("list[Any]", buckets):
        if (
            not isinstance(pair, list)
            or len(cast("list[Any]", pair)) != 2
            or not isinstance(pair[0], int)
            or not 0 <= pair[0] < dim
            or not isinstance(pair[1], int | float)
        ):
            raise ValueError("predictor.hasher.idf.buckets holds [bucket, weight] pairs")
        idf[pair[0]] = float(pair[1])
    return TextHasher(dim=dim, idf=idf, tail_chars=tail)


def train_predictor(
    examples: Iterable[Example],
    *,
    clusters: int = 32,
    dim: int = DEFAULT_DIM,
    tail_chars: int = DEFAULT_TAIL_CHARS,
    shrinkage: Shrinkage | None = None,
    seed: int = 0,
) -> Predictor:
    """Fit a predictor on logged examples.

    The IDF weights and the clusters are fitted on the examples' text; then every outcome is
    replayed into the quality model. ``clusters=0`` fits no clusters (task classes only).

    Args:
        examples: The examples.
        clusters: Number of prompt clusters.
        dim: Buckets of the hashed vectors.
        tail_chars: Characters read from the end of each prompt.
        shrinkage: Prior strengths of the quality model.
        seed: Seed of the clustering.

    Returns:
        The predictor.

    Raises:
        ValueError: There are no examples.
    """
    rows: Sequence[Example] = list(examples)
    if not rows:
        raise ValueError("training needs at least one example")
    model = QualityModel(shrinkage)
    if clusters <= 0:
        for ex in rows:
            for name, outcome in ex.outcomes.items():
                model.update(
                    ex.task_class, 0, name, outcome.quality,
                    cost_usd=outcome.cost_usd, latency_s=outcome.latency_s,
                )  # fmt: skip
        return Predictor(model)
    from agentmesh.router.learned.clusters import Clusters

    plain = TextHasher(dim=dim, tail_chars=tail_chars)
    docs = [set(plain.buckets(ex.text)) for ex in rows]
    df = [0] * dim
    for doc in docs:
        for bucket in doc:
            df[bucket] += 1
    n = len(rows)
    idf = [math.log((1 + n) / (1 + d)) + 1.0 for d in df]
    hasher = TextHasher(dim=dim, idf=idf, tail_chars=tail_chars)
    vectors = [hasher.vector(ex.text) for ex in rows]
    fitted = Clusters.fit(vectors, k=clusters, dim=dim, seed=seed)
    labels = fitted.assign_many(vectors)
    for ex, label in zip(rows, labels, strict=True):
        for name, outcome in ex.outcomes.items():
            model.update(
                ex.task_class, label, name, outcome.quality,
                cost_usd=outcome.cost_usd, latency_s=outcome.latency_s,
            )  # fmt: skip
    return Predictor(model, hasher, fitted)
