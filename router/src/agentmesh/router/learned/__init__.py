"""The router's learned parts: prompt hashing and clusters, the quality model, training.

- :class:`TextHasher`: hashed TF-IDF words of a prompt's tail (no vocabulary, no text kept);
- ``Clusters`` (:mod:`agentmesh.router.learned.clusters`, needs numpy: the ``learned``
  extra): spherical k-means prompt clusters;
- :class:`QualityModel`: quality, cost and latency per task class x cluster x model, with
  shrinkage, updated online;
- :class:`Predictor` and :func:`train_predictor`: the three together, as the route table
  carries them, and their offline training from :func:`read_examples` data.

Example:
    >>> from agentmesh.router.learned import QualityModel
    >>> QualityModel().predict("qa", 0, ("m",))[0].quality
    0.5
"""

from typing import TYPE_CHECKING

from agentmesh.core.lazy import lazy_exports

if TYPE_CHECKING:
    from agentmesh.router.learned.datasets import Dataset, read_examples
    from agentmesh.router.learned.hashing import SparseVector, TextHasher
    from agentmesh.router.learned.predictor import Example, Outcome, Predictor, train_predictor
    from agentmesh.router.learned.quality import Prediction, QualityModel, Shrinkage

__all__ = [
    "Dataset",
    "Example",
    "Outcome",
    "Prediction",
    "Predictor",
    "QualityModel",
    "Shrinkage",
    "SparseVector",
    "TextHasher",
    "read_examples",
    "train_predictor",
]

__getattr__, __dir__ = lazy_exports(
    globals(),
    {
        "Dataset": "agentmesh.router.learned.datasets",
        "Example": "agentmesh.router.learned.predictor",
        "Outcome": "agentmesh.router.learned.predictor",
        "Prediction": "agentmesh.router.learned.quality",
        "Predictor": "agentmesh.router.learned.predictor",
        "QualityModel": "agentmesh.router.learned.quality",
        "Shrinkage": "agentmesh.router.learned.quality",
        "SparseVector": "agentmesh.router.learned.hashing",
        "TextHasher": "agentmesh.router.learned.hashing",
        "read_examples": "agentmesh.router.learned.datasets",
        "train_predictor": "agentmesh.router.learned.predictor",
    },
)
