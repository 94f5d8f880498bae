"""Read an OTLP/HTTP request body within the size limit, decompressing gzip safely.

The limit holds twice: on the bytes on the wire (``Content-Length`` is checked before reading,
then the stream is counted as it arrives) and on the decompressed body. Decompression streams
with an output cap, so a gzip bomb (a few kilobytes that inflate to gigabytes) costs at most
the limit plus one chunk of memory before it is refused.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator
from typing import Final

from agentmesh.core.errors import ReceiverError

__all__ = ["BodyTooLargeError", "gunzip_capped", "read_capped"]

_GZIP_WBITS: Final = 16 + zlib.MAX_WBITS


class BodyTooLargeError(ReceiverError):
    """The body, compressed or decompressed, is over the size limit (HTTP 413)."""


async def read_capped(
    chunks: AsyncIterator[bytes], content_length: int | None, limit: int
) -> bytes:
    """Read a request body, refusing it as soon as it is over ``limit`` bytes.

    Args:
        chunks: The body as it arrives.
        content_length: The declared ``Content-Length``, if any.
        limit: Largest body accepted, in bytes.

    Returns:
        The whole body.

    Raises:
        BodyTooLargeError: The declared or the actual size is over the limit.
    """
    if content_length is not None and content_length > limit:
        raise BodyTooLargeError(
            f"the request body is {content_length} bytes, over the limit of {limit} bytes"
        )
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError(f"the request body is over the limit of {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


def gunzip_capped(data: bytes, limit: int) -> bytes:
    """Decompress a gzip body (one or more members), refusing it past ``limit`` bytes.

    Args:
        data: The gzip-compressed body.
        limit: Largest decompressed size accepted, in bytes.

    Returns:
        The decompressed body.

    Raises:
        BodyTooLargeError: It decompresses to more than ``limit`` bytes.
        ReceiverError: It is not valid gzip.

    Example:
        >>> import gzip
        >>> gunzip_capped(gzip.compress(b"spans"), 100)
        b'spans'
    """
    out = bytearray()
    pending = data
    try:
        while pending:
            inflater = zlib.decompressobj(wbits=_GZIP_WBITS)
            while pending:
                # max_length is never 0 here (0 would mean "no limit").
                out += inflater.decompress(pending, limit + 1 - len(out))
                if len(out) > limit:
                    raise BodyTooLargeError(
                        f"the gzip body decompresses to over the limit of {limit} bytes"
                    )
                if inflater.eof:
                    break
                pending = inflater.unconsumed_tail
            if not inflater.eof:
                raise ReceiverError("the gzip body is truncated")
            pending = inflater.unused_data
    except zlib.error as exc:
        raise ReceiverError(f"the body is not valid gzip: {exc}") from exc
    return bytes(out)
