"""Learned detector state that survives a restart: :class:`DetectorStateStore`.

Every :class:`~agentmesh.collector.detectors.base.StatefulDetector` (baselines, per-model
rates) is saved under its name, as JSON, periodically (every 30 s by default) and on shutdown,
and restored at start. Two backends:

- :class:`FileStateBackend`: one JSON file (by default next to the DuckDB file, see
  :func:`default_state_path`), replaced atomically (written to a temporary file, flushed to
  disk, renamed over the old one), so a crash mid-save leaves the previous file whole.
  Entries of detectors not running now are kept; a file that cannot be read as detector
  state is renamed ``<name>.unreadable-<ns>`` (kept for inspection), never overwritten.
- :class:`RedisStateBackend`: a key per detector, ``<prefix>detector-state:<name>``, so any
  collector instance that starts (or restarts) takes up the state the others saved.

Each detector's state travels in an envelope naming the format, its version and the detector.
State that cannot be read (corrupt JSON, another format or version, another detector's, or a
``restore`` that raises) is logged and the detector starts cold; a backend that fails (disk
full, Redis down) is logged and the collector carries on. Nothing here ever raises into the
collector once it runs.

Example:
    >>> from pathlib import Path
    >>> default_state_path(Path("/var/lib/agentmesh/agentmesh.duckdb"))
    PosixPath('/var/lib/agentmesh/agentmesh.detector-state.json')
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final, Protocol, Self, cast

import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from agentmesh.collector.detection import JsonValue
from agentmesh.collector.detectors.base import Detector, StatefulDetector
from agentmesh.collector.hot_state.redis_errors import redis_address, redis_error
from agentmesh.core.errors import CollectorError, StoreError
from agentmesh.core.log import get_logger

__all__ = [
    "STATE_FORMAT",
    "STATE_VERSION",
    "DetectorStateBackend",
    "DetectorStateStore",
    "FileStateBackend",
    "RedisStateBackend",
    "default_state_path",
]

log = get_logger(__name__)

STATE_FORMAT: Final = "agentmesh.detector-state"
"""``format`` of every saved detector state (and of the state file)."""

STATE_VERSION: Final = 1
"""Version of the envelope; state of another version is not restored."""

_REDIS_FAILURES: Final = (redis.exceptions.RedisError, OSError)


def default_state_path(duckdb_path: Path) -> Path:
    """Where the state file goes by default: next to the DuckDB file.

    Args:
        duckdb_path: The collector's DuckDB file.

    Returns:
        ``<dir>/<stem>.detector-state.json``.
    """
    return duckdb_path.with_name(f"{duckdb_path.stem}.detector-state.json")


class DetectorStateBackend(Protocol):
    """Where detector state is kept. Failures raise ``StoreError``."""

    @property
    def description(self) -> str:
        """Where the state goes, for logs (no credentials)."""
        ...

    async def load(self, names: Sequence[str]) -> dict[str, str]:
        """Read the saved envelopes of some detectors.

        Args:
            names: The detectors' names.

        Returns:
            Each found detector's envelope as JSON text, by name (missing ones are absent).
        """
        ...

    async def save(self, envelopes: Mapping[str, str]) -> None:
        """Store envelopes, each replacing what was saved under its detector's name.

        Args:
            envelopes: JSON text by detector name.
        """
        ...

    async def close(self) -> None:
        """Release connections; closing twice is harmless."""
        ...


class FileStateBackend:
    """All detectors' state in one JSON file, replaced atomically on each save.

    The file is ``{"format": ..., "version": 1, "detectors": {name: envelope}}``.

    Args:
        path: The file (its directory is created when missing).
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._entries: dict[str, str] = {}

    @property
    def path(self) -> Path:
        """The state file."""
        return self._path

    @property
    def description(self) -> str:
        """The file's path."""
        return str(self._path)

    async def load(self, names: Sequence[str]) -> dict[str, str]:
        """Read the file (a missing file holds nothing).

        Args:
            names: The detectors wanted.

        Returns:
            Their envelopes as JSON text. Entries of other detectors are kept for the next
            save.

        Raises:
            StoreError: The file cannot be read, or is not a detector state file.
        """
        try:
            text = await asyncio.to_thread(self._read)
        except OSError as exc:
            raise StoreError(f"cannot read detector state {self._path}: {exc}") from exc
        if text is None:
            return {}
        try:
            document = json.loads(text)
        except ValueError as exc:
            raise self._unreadable(f"is not valid JSON ({exc})") from exc
        if (
            not isinstance(document, dict)
            or cast(dict[str, object], document).get("format") != STATE_FORMAT
            or not isinstance(cast(dict[str, object], document).get("detectors"), dict)
        ):
            raise self._unreadable("is not an AgentMesh detector state file")
        detectors = cast(dict[str, object], cast(dict[str, object], document)["detectors"])
        self._entries = {
            name: json.dumps(entry, ensure_ascii=False) for name, entry in detectors.items()
        }
        return {name: self._entries[name] for name in names if name in self._entries}

    async def save(self, envelopes: Mapping[str, str]) -> None:
        """Write the file again with these envelopes (others kept), atomically.

        Args:
            envelopes: JSON text by detector name.

        Raises:
            StoreError: The file cannot be written.
        """
        entries = {**self._entries, **envelopes}
        body = ",".join(f"{json.dumps(name)}:{text}" for name, text in sorted(entries.items()))
        header = json.dumps({"format": STATE_FORMAT, "version": STATE_VERSION})[:-1]
        text = f'{header},"detectors":{{{body}}}}}\n'
        try:
            await asyncio.to_thread(self._write, text)
        except OSError as exc:
            raise StoreError(f"cannot write detector state {self._path}: {exc}") from exc
        self._entries = entries

    async def close(self) -> None:
        """Nothing to release."""

    def _unreadable(self, problem: str) -> StoreError:
        """Move a file that is not ours (or is corrupt) aside, so saving never destroys it."""
        aside = self._path.with_name(f"{self._path.name}.unreadable-{time.time_ns()}")
        try:
            self._path.rename(aside)
        except OSError as exc:
            return StoreError(f"detector state {self._path} {problem}; not moved aside: {exc}")
        return StoreError(f"detector state {self._path} {problem}; moved aside to {aside.name}")

    def _read(self) -> str | None:
        try:
            return self._path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def _write(self, text: str) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self._path.with_name(f".{self._path.name}.{secrets.token_hex(6)}.tmp")
        try:
            with temporary.open("w", encoding="utf-8") as file:
                file.write(text)
                file.flush()
                os.fsync(file.fileno())
            temporary.replace(self._path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        try:
            directory = os.open(self._path.parent, os.O_RDONLY)
        except OSError:
            return  # the rename is done; syncing the directory is best effort
        try:
            os.fsync(directory)
        except OSError:
            pass
        finally:
            os.close(directory)


class RedisStateBackend:
    """Each detector's state under a Redis key of its own, shared by every collector.

    Args:
        url: ``redis://host:6379/0``.
        prefix: Start of every key (the collector's ``redis_prefix``).
        timeout_seconds: Connect and command timeout.

    Raises:
        StoreError: The prefix is empty or the timeout not positive.
    """

    def __init__(
        self, url: str, *, prefix: str = "agentmesh:", timeout_seconds: float = 5.0
    ) -> None:
        if not prefix:
            raise StoreError("the Redis key prefix must not be empty")
        if timeout_seconds <= 0:
            raise StoreError("the Redis timeout must be positive")
        self._url = url
        self._prefix = prefix
        self._timeout = timeout_seconds
        self._address = redis_address(url)
        self._client: aioredis.Redis | None = None

    @property
    def description(self) -> str:
        """``redis://host:port`` and the key pattern."""
        return f"redis://{self._address} {self.key('*')}"

    def key(self, name: str) -> str:
        """The key a detector's state is saved under.

        Args:
            name: The detector's name.

        Returns:
            ``<prefix>detector-state:<name>``.
        """
        return f"{self._prefix}detector-state:{name}"

    async def load(self, names: Sequence[str]) -> dict[str, str]:
        """Read the detectors' keys (one ``MGET``).

        Args:
            names: The detectors' names.

        Returns:
            The envelopes found, by name.

        Raises:
            StoreError: Redis failed.
        """
        if not names:
            return {}
        client = self._connection()
        try:
            values = cast(
                list[str | None],
                await client.mget([self.key(n) for n in names]),  # pyright: ignore[reportUnknownMemberType]
            )
        except _REDIS_FAILURES as exc:
            raise redis_error(exc, self._address, self._timeout) from exc
        return {n: v for n, v in zip(names, values, strict=True) if v is not None}

    async def save(self, envelopes: Mapping[str, str]) -> None:
        """Set the detectors' keys (one round trip).

        Args:
            envelopes: JSON text by detector name.

        Raises:
            StoreError: Redis failed.
        """
        if not envelopes:
            return
        client = self._connection()
        try:
            await client.mset({self.key(n): text for n, text in envelopes.items()})  # pyright: ignore[reportUnknownMemberType]
        except _REDIS_FAILURES as exc:
            raise redis_error(exc, self._address, self._timeout) from exc

    async def close(self) -> None:
        """Close the connection pool."""
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.aclose()
            except _REDIS_FAILURES as exc:
                log.warning("Redis connection did not close cleanly", reason=str(exc))

    def _connection(self) -> aioredis.Redis:
        if self._client is None:
            self._client = aioredis.Redis.from_url(  # pyright: ignore[reportUnknownMemberType]
                self._url,
                decode_responses=True,
                socket_connect_timeout=self._timeout,
                socket_timeout=self._timeout,
                retry=Retry(NoBackoff(), 1),
            )
        return self._client


def _envelope(name: str, state_text: str, saved_at: float) -> str:
    head = json.dumps(
        {"format": STATE_FORMAT, "version": STATE_VERSION, "detector": name, "saved_at": saved_at},
        ensure_ascii=False,
    )
    return f'{head[:-1]},"state":{state_text}}}'


def _state_of(name: str, text: str) -> Mapping[str, JsonValue]:
    """The state inside an envelope; ``ValueError`` saying why when it is not one of ours."""
    document = json.loads(text)
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    fields = cast(dict[str, object], document)
    if fields.get("format") != STATE_FORMAT:
        raise ValueError(f"format is {fields.get('format')!r}, not {STATE_FORMAT!r}")
    if fields.get("version") != STATE_VERSION:
        raise ValueError(f"version {fields.get('version')!r} is not {STATE_VERSION}")
    if fields.get("detector") != name:
        raise ValueError(f"it is the state of detector {fields.get('detector')!r}")
    state = fields.get("state")
    if not isinstance(state, dict):
        raise ValueError("its state is not a JSON object")
    return cast(dict[str, JsonValue], state)


class DetectorStateStore:
    """Saves and restores the state of the stateful detectors among ``detectors``.

    An async context manager owning its saving task: entering loads the saved state and
    restores each detector (or leaves it cold, logged), then saves every
    ``interval_seconds``; leaving stops the task and saves once more. Enter it before the
    pipeline starts feeding the detectors and leave it after the pipeline stopped, so the
    restored state is in place before the first span and the final save has every span.

    Only detectors whose state changed since the last save are written (the file backend then
    rewrites the file). Snapshots are taken and encoded on the event loop, between pipeline
    cycles, so they are consistent; the write itself runs off the loop.

    Args:
        detectors: The pipeline's detectors; those that are not stateful are ignored.
        backend: Where the state goes.
        interval_seconds: Time between periodic saves.

    Raises:
        CollectorError: The interval is not positive, or two stateful detectors share a name.
    """

    def __init__(
        self,
        detectors: Sequence[Detector],
        backend: DetectorStateBackend,
        *,
        interval_seconds: float = 30.0,
    ) -> None:
        if interval_seconds <= 0:
            raise CollectorError(f"interval_seconds must be positive, got {interval_seconds}")
        stateful = [d for d in detectors if isinstance(d, StatefulDetector)]
        self._detectors: dict[str, StatefulDetector] = {d.name: d for d in stateful}
        if len(self._detectors) != len(stateful):
            raise CollectorError("two stateful detectors have the same name")
        self._backend = backend
        self._interval = interval_seconds
        self._saved: dict[str, str] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._lock = asyncio.Lock()
        self.saves = 0
        """Saves that wrote something."""
        self.failures = 0
        """Loads and saves that failed (logged)."""

    @property
    def names(self) -> list[str]:
        """The stateful detectors' names."""
        return list(self._detectors)

    @property
    def backend(self) -> DetectorStateBackend:
        """Where the state goes."""
        return self._backend

    async def restore(self) -> list[str]:
        """Load the saved state and restore each detector it covers (never raises).

        Returns:
            The names of the detectors restored; the others start cold (reasons logged).
        """
        if not self._detectors:
            return []
        try:
            found = await self._backend.load(list(self._detectors))
        except StoreError as exc:
            self.failures += 1
            log.error(
                "detector state not loaded, detectors start cold",
                backend=self._backend.description,
                reason=str(exc),
            )
            return []
        restored: list[str] = []
        for name, text in found.items():
            detector = self._detectors[name]
            try:
                state = _state_of(name, text)
            except ValueError as exc:
                log.warning(
                    "saved detector state is unreadable, detector starts cold",
                    detector=name,
                    reason=str(exc),
                )
                continue
            cold = detector.snapshot()
            try:
                detector.restore(state)
            except Exception as exc:
                log.warning(
                    "detector refused its saved state, detector starts cold",
                    detector=name,
                    reason=f"{type(exc).__name__}: {exc}",
                    exc_info=True,
                )
                try:
                    detector.restore(cold)
                except Exception:
                    log.exception("detector could not return to its cold state", detector=name)
                continue
            restored.append(name)
        log.info(
            "detector state restored",
            backend=self._backend.description,
            restored=restored,
            cold=sorted(set(self._detectors) - set(restored)),
        )
        return restored

    async def save(self) -> int:
        """Save the state of the detectors whose state changed (never raises).

        Returns:
            How many detectors' state was written (0 when nothing changed or the save failed).
        """
        async with self._lock:
            changed: dict[str, str] = {}
            for name, detector in self._detectors.items():
                try:
                    text = json.dumps(detector.snapshot(), ensure_ascii=False)
                except Exception:
                    self.failures += 1
                    log.exception("detector state could not be taken", detector=name)
                    continue
                if self._saved.get(name) != text:
                    changed[name] = text
            if not changed:
                return 0
            now = time.time()
            envelopes = {name: _envelope(name, text, now) for name, text in changed.items()}
            try:
                await self._backend.save(envelopes)
            except StoreError as exc:
                self.failures += 1
                log.error(
                    "detector state not saved",
                    backend=self._backend.description,
                    reason=str(exc),
                )
                return 0
            self._saved.update(changed)
            self.saves += 1
            return len(changed)

    async def start(self) -> None:
        """Restore the detectors and start saving periodically.

        Raises:
            CollectorError: Already started.
        """
        if self._task is not None:
            raise CollectorError("the detector state store is already running")
        await self.restore()
        self._task = asyncio.create_task(self._run(), name="agentmesh-detector-state")

    async def stop(self) -> None:
        """Stop saving periodically (a save under way finishes), save once more, close."""
        self._stopping.set()
        task, self._task = self._task, None
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)
        await self.save()
        await self._backend.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                async with asyncio.timeout(self._interval):
                    await self._stopping.wait()
                return
            except TimeoutError:
                pass
            try:
                await self.save()
            except Exception:  # a bug: keep saving on the next period
                log.exception("detector state save failed")
