"""A "full disk" for tests: the process's file size limit, lifted when the block ends.

``RLIMIT_FSIZE`` (with ``SIGXFSZ`` ignored) makes the kernel refuse to grow any file of the
process past it, as a full disk refuses to grow it (the system says "File too large" instead of
"No space left on device"). Lifting the limit is the disk getting room again.
"""

from __future__ import annotations

import contextlib
import resource
import signal
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def disk_full_beyond(path: Path, room: int) -> Iterator[None]:
    """Let no file grow past ``room`` bytes more than the largest of the store's files."""
    sizes = [p.stat().st_size for p in path.parent.glob(path.name + "*")]
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (max(sizes, default=0) + room, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)
