"""Hashed bag-of-words features of a prompt, computed in-process with no vocabulary.

A prompt's text becomes a sparse vector: each lower-cased word (runs of letters and digits;
punctuation separates words) is hashed with CRC-32 into one of ``dim`` buckets, each bucket's
count is weighted by the inverse document frequency learned offline, and the vector is scaled
to unit length. Nothing
here keeps text: the hash of a word is all that survives, and only inside the process (the
router sends the prompt's cluster number, never the vector).

CRC-32 is stable across processes and Python versions (unlike ``hash()``), so a model trained
offline reads the same buckets in the app. Hashing is the costly step of a decision, so each
word's bucket is cached (the cache is bounded; a full cache is cleared, not grown), keyed by the
word's UTF-8 bytes, and shared by every hasher of the same dimension in the process: a new
route table's hasher starts warm. ASCII text (almost every prompt) is split as bytes: one pass
lower-cases it and blanks punctuation, and no word is encoded; other text is split as ``str``
(Unicode case and whitespace) and its words encoded. Both give the same words for ASCII text.

Example:
    >>> hasher = TextHasher(dim=1024)
    >>> vec = hasher.vector("Which planet is the largest? Which one?")
    >>> len(vec.indices) == len(set(vec.indices)), round(sum(w * w for w in vec.weights), 6)
    (True, 1.0)
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, cast

__all__ = ["DEFAULT_DIM", "DEFAULT_TAIL_CHARS", "SparseVector", "TextHasher"]

DEFAULT_DIM: Final = 1 << 14
"""Buckets of the hashed vector (16,384: few collisions for prompt vocabularies)."""
DEFAULT_TAIL_CHARS: Final = 150
"""Characters read from the end of the prompt: the question sits at the end of a prompt.

Reading the text is most of a decision's cost (about 0.15 µs a word). On RouterBench, tails of
100, 150, 200 and 400 characters place prompts equally well (accuracy at 20% of gpt-4's cost
and AIQ the same within run-to-run noise, over four train/test splits), so the default reads
150 (about 25 words). A route table records the tail its predictor was trained with."""

_SEPARATORS: Final = str.maketrans(
    {c: " " for c in "".join(chr(i) for i in range(128) if not chr(i).isalnum())}
)
_ASCII_WORDS: Final = bytes(
    (c | 0x20) if 0x41 <= c <= 0x5A else c if c >= 128 or chr(c).isalnum() else 0x20
    for c in range(256)
)
"""Byte table: ASCII upper case to lower case, ASCII punctuation and controls to a space."""
_CACHE_LIMIT: Final = 200_000
_word_buckets: dict[int, dict[bytes, int]] = {}  # dim -> word -> bucket, shared per dimension


@dataclass(frozen=True, slots=True)
class SparseVector:
    """A unit-length sparse vector.

    Attributes:
        indices: Bucket numbers, each once.
        weights: The weight of each bucket, in ``indices`` order.
    """

    indices: tuple[int, ...]
    weights: tuple[float, ...]

    def __bool__(self) -> bool:
        return bool(self.indices)


EMPTY_VECTOR: Final = SparseVector((), ())


class TextHasher:
    """Turns prompt text into a TF-IDF-weighted hashed vector.

    Args:
        dim: Number of buckets (a power of two).
        idf: Inverse document frequency per bucket (``dim`` values); all ones when ``None``.
        tail_chars: Characters read from the end of the text.

    Raises:
        ValueError: ``dim`` is not a power of two, or ``idf`` has the wrong length.
    """

    def __init__(
        self,
        *,
        dim: int = DEFAULT_DIM,
        idf: Sequence[float] | None = None,
        tail_chars: int = DEFAULT_TAIL_CHARS,
    ) -> None:
        if dim <= 0 or dim & (dim - 1):
            raise ValueError(f"dim must be a power of two, not {dim}")
        if idf is not None and len(idf) != dim:
            raise ValueError(f"idf has {len(idf)} values for {dim} buckets")
        self._mask = dim - 1
        self._dim = dim
        self._idf: tuple[float, ...] | None = tuple(idf) if idf is not None else None
        self._tail = tail_chars
        self._cache = _word_buckets.setdefault(dim, {})

    @property
    def dim(self) -> int:
        """Number of buckets."""
        return self._dim

    @property
    def idf(self) -> tuple[float, ...] | None:
        """Inverse document frequency per bucket, if learned."""
        return self._idf

    @property
    def tail_chars(self) -> int:
        """Characters read from the end of the text."""
        return self._tail

    def buckets(self, text: str) -> list[int]:
        """Return the bucket of each word of the text's tail, in order, repeats included.

        Args:
            text: The prompt text.

        Returns:
            The buckets.
        """
        if len(text) > self._tail:
            text = text[-self._tail :]
            text = text[text.find(" ") + 1 :]  # drop the word the cut went through
        cache = self._cache
        if text.isascii():  # O(1) for str
            words = text.encode().translate(_ASCII_WORDS).split()
        else:
            # surrogatepass: a lone surrogate (malformed text) is hashed, not raised on
            words = [
                w.encode("utf-8", "surrogatepass")
                for w in text.lower().translate(_SEPARATORS).split()
            ]
        found = list(map(cache.get, words))  # the common case: every word seen before
        if None not in found:
            return cast("list[int]", found)
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        mask = self._mask
        for i, bucket in enumerate(found):
            if bucket is None:
                word = words[i]
                bucket = cache.get(word)
                if bucket is None:
                    bucket = cache[word] = zlib.crc32(word) & mask
                found[i] = bucket
        return cast("list[int]", found)

    def vector(self, text: str) -> SparseVector:
        """Return the text's unit-length TF-IDF vector.

        Args:
            text: The prompt text.

        Returns:
            The vector (empty when the text has no word).
        """
        counts: dict[int, int] = {}
        for bucket in self.buckets(text):
            counts[bucket] = counts.get(bucket, 0) + 1
        if not counts:
            return EMPTY_VECTOR
        idf = self._idf
        indices = tuple(counts)
        if idf is None:
            raw = [float(c) for c in counts.values()]
        else:
            raw = [c * idf[i] for i, c in counts.items()]
        norm = math.sqrt(sum(w * w for w in raw)) or 1.0
        return SparseVector(indices, tuple(w / norm for w in raw))
