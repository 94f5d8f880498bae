"""Fresh trace ids for each replay of a pre-serialised stream, patched in place in the bytes.

The soak replays the same OTLP requests over and over; each replay must look like new runs to
the collector, so the trace ids change while everything else (span ids, parent span ids, the
order of spans) stays. Generating new spans costs about 47 µs a span; instead the byte offsets
of every 16-byte ``trace_id`` in a serialised ``ExportTraceServiceRequest`` are found once by
walking the protobuf wire format (spans and their links), and each replay copies new bytes
over them: the first 8 bytes of every trace id are XORed with a 64-bit mask derived from the
replay number. The mask is the same for the whole replay, so spans of one trace keep sharing a
trace id and parent/child relations stay intact; distinct replay numbers give distinct masks
(an odd multiplier is a bijection modulo 2**64), so no two replays share a trace id.
"""

from __future__ import annotations

from dataclasses import dataclass

# Field numbers of the OTLP trace protos walked to reach trace ids.
_REQUEST_RESOURCE_SPANS = 1
_RESOURCE_SPANS_SCOPE_SPANS = 2
_SCOPE_SPANS_SPANS = 2
_SPAN_TRACE_ID = 1
_SPAN_LINKS = 13
_LINK_TRACE_ID = 1
_LEN = 2
_MASK_64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = 0
    shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(buf: bytes, start: int, end: int, wanted: frozenset[int]) -> list[tuple[int, int, int]]:
    """The length-delimited fields numbered in ``wanted`` of the message ``buf[start:end]``.

    Returns:
        ``(field, value_start, value_end)`` for each occurrence, in order.
    """
    out: list[tuple[int, int, int]] = []
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            _, pos = _varint(buf, pos)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == _LEN:
            size, pos = _varint(buf, pos)
            if field in wanted:
                out.append((field, pos, pos + size))
            pos += size
        else:
            raise ValueError(f"unsupported wire type {wire} at byte {pos}")
    return out


@dataclass(frozen=True, slots=True)
class TraceIdSites:
    """Where the trace ids of one serialised request sit, grouped by trace.

    Attributes:
        groups: For each distinct trace id of the request, its first 8 bytes as a big-endian
            integer and the byte offsets of every copy of it (spans and links).
    """

    groups: tuple[tuple[int, tuple[int, ...]], ...]

    @property
    def count(self) -> int:
        """How many trace id copies the request holds."""
        return sum(len(offsets) for _, offsets in self.groups)


def find_trace_ids(body: bytes) -> TraceIdSites:
    """Locate every span's and link's ``trace_id`` in a serialised request.

    Args:
        body: A serialised ``ExportTraceServiceRequest``.

    Returns:
        The offsets, grouped by trace id.

    Raises:
        ValueError: The bytes are not a request this walker understands (a trace id that is
            not 16 bytes, a group wire type).
    """
    by_trace: dict[bytes, list[int]] = {}

    def note(start: int, end: int) -> None:
        if end - start != 16:
            raise ValueError(f"a trace_id of {end - start} bytes at byte {start}")
        by_trace.setdefault(body[start:end], []).append(start)

    spans_field = frozenset({_SPAN_TRACE_ID, _SPAN_LINKS})
    for _, rs_start, rs_end in _fields(body, 0, len(body), frozenset({_REQUEST_RESOURCE_SPANS})):
        for _, ss_start, ss_end in _fields(
            body, rs_start, rs_end, frozenset({_RESOURCE_SPANS_SCOPE_SPANS})
        ):
            for _, sp_start, sp_end in _fields(
                body, ss_start, ss_end, frozenset({_SCOPE_SPANS_SPANS})
            ):
                for field, start, end in _fields(body, sp_start, sp_end, spans_field):
                    if field == _SPAN_TRACE_ID:
                        note(start, end)
                        continue
                    for _, lk_start, lk_end in _fields(
                        body, start, end, frozenset({_LINK_TRACE_ID})
                    ):
                        note(lk_start, lk_end)
    return TraceIdSites(
        tuple(
            (int.from_bytes(trace_id[:8], "big"), tuple(offsets))
            for trace_id, offsets in by_trace.items()
        )
    )


def replay_mask(replay: int) -> int:
    """The 64-bit mask XORed into the first 8 bytes of every trace id of replay ``replay``.

    Args:
        replay: The replay number (0 leaves the ids as generated).

    Returns:
        The mask; distinct for distinct replay numbers below 2**64.
    """
    return (replay * _GOLDEN) & _MASK_64


def patch_trace_ids(body: bytes, sites: TraceIdSites, replay: int) -> bytes:
    """Return ``body`` with every trace id rewritten for replay ``replay``.

    Args:
        body: The serialised request ``sites`` was found in.
        sites: Its trace id offsets (:func:`find_trace_ids`).
        replay: The replay number.

    Returns:
        The new request bytes (same length; only trace id bytes differ).
    """
    if replay == 0:
        return body
    mask = replay_mask(replay)
    out = bytearray(body)
    for head, offsets in sites.groups:
        new = (head ^ mask).to_bytes(8, "big")
        for offset in offsets:
            out[offset : offset + 8] = new
    return bytes(out)
