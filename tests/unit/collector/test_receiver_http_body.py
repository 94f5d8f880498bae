"""Reading HTTP bodies under the size cap, and gzip decompression that refuses bombs."""

import gzip
from collections.abc import AsyncIterator

import pytest

from agentmesh.collector.receiver.http_body import BodyTooLargeError, gunzip_capped, read_capped
from agentmesh.core import ReceiverError


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_reads_a_body_within_the_limit() -> None:
    assert await read_capped(_chunks(b"ab", b"cd"), 4, 4) == b"abcd"


async def test_declared_length_over_the_limit_is_refused_before_reading() -> None:
    with pytest.raises(BodyTooLargeError, match="5 bytes, over the limit of 4"):
        await read_capped(_chunks(), 5, 4)


async def test_undeclared_body_over_the_limit_is_refused() -> None:
    with pytest.raises(BodyTooLargeError):
        await read_capped(_chunks(b"abc", b"de"), None, 4)


def test_gunzip_multi_member_body() -> None:
    assert gunzip_capped(gzip.compress(b"ab") + gzip.compress(b"c"), 3) == b"abc"


def test_gzip_bomb_is_refused_at_the_cap() -> None:
    bomb = gzip.compress(bytes(64 * 1024 * 1024))  # about 64 KiB that inflate to 64 MiB
    with pytest.raises(BodyTooLargeError, match="decompresses to over the limit of 1048576"):
        gunzip_capped(bomb, 1024 * 1024)


@pytest.mark.parametrize(
    ("data", "words"),
    [(b"plain text", "not valid gzip"), (gzip.compress(b"spans" * 100)[:-6], "truncated")],
)
def test_bad_gzip_is_a_receiver_error(data: bytes, words: str) -> None:
    with pytest.raises(ReceiverError, match=words):
        gunzip_capped(data, 1 << 20)
