"""A realistic agent thread, driven through a saver's API the way LangGraph's loop drives it.

State of about S bytes, text-like (words drawn with a Zipf law from a fixed vocabulary, so it
compresses like prose, about 3x with zstd):

- ``messages``: a chat history of ``kept`` message dicts (~30 % of S; one system message kept
  first, then user / ai / tool turns); each step appends one message and drops the oldest turn.
- ``documents``: retrieved documents (~70 % of S); every 10th step replaces one of them.
- ``step``: the step counter; ``branch:to:agent`` / ``branch:to:tools``: the trigger channels.

A thread of N steps is N checkpoints: the input checkpoint (step -1, source ``input``) and N-1
loop steps. Each loop step does what the Pregel loop does: ``put_writes`` of the task's writes
against the parent checkpoint, then ``put`` of the next checkpoint (made with langgraph's
``create_checkpoint``, every channel's value in it) with ``new_versions`` holding only the
channels that changed, versions from the saver's own ``get_next_version``. The content of a
thread (:class:`ThreadPlan`) is generated before it runs and shared by every saver, outside the
timings; each thread of a config has its own content (seeded by its number).
"""

from __future__ import annotations

import importlib
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    Checkpoint,
    CheckpointMetadata,
    empty_checkpoint,
)

create_checkpoint: Callable[..., Checkpoint] = importlib.import_module(
    "langgraph.checkpoint.base"
).create_checkpoint

SIZES: dict[str, int] = {"1KB": 1_000, "100KB": 100_000, "1MB": 1_000_000}
DOC_SHARE = 0.7
DOC_EVERY = 10
_SYLLABLES = (
    "ka", "ri", "to", "na", "mi", "so", "le", "an", "ver", "pro", "ti", "on", "de", "al", "is",
    "ment", "tra", "con", "sta", "ble", "per", "ex", "in", "re", "com", "ter", "ly", "ing", "ed",
    "es", "ation", "ful", "ous", "ive", "ize", "ar", "or", "ness", "lo", "gi", "cal", "sys", "tem",
    "da", "ta",
)  # fmt: skip


class TextSource:
    """Deterministic text-like strings: words from a 4,000-word vocabulary, Zipf-distributed."""

    def __init__(self, seed: int) -> None:
        rng = random.Random(seed)
        words: set[str] = set()
        while len(words) < 4000:
            words.add("".join(rng.choices(_SYLLABLES, k=rng.choice((1, 2, 2, 3, 3, 4)))))
        self._words = sorted(words, key=lambda w: (len(w), w))
        total = 0.0
        self._cum: list[float] = []
        for rank in range(len(self._words)):
            total += 1.0 / (rank + 1)
            self._cum.append(total)
        self._rng = rng

    def text(self, n_chars: int) -> str:
        """Return about ``n_chars`` characters of sentences (at least one word)."""
        picks = self._rng.choices(self._words, cum_weights=self._cum, k=max(1, n_chars // 3))
        out: list[str] = []
        size = 0
        for i, word in enumerate(picks):
            piece = word.capitalize() if i % 14 == 0 else word
            if i % 14 == 13:
                piece += "."
            out.append(piece)
            size += len(piece) + 1
            if size >= n_chars:
                break
        return " ".join(out)


@dataclass(frozen=True)
class Shape:
    """How a state of ``size`` bytes is split.

    Attributes:
        label: ``1KB``, ``100KB`` or ``1MB``.
        size: Target state size in bytes.
        kept: Messages in the history.
        message_chars: Characters of content per message.
        docs: Number of documents.
        doc_chars: Characters of text per document.
    """

    label: str
    size: int
    kept: int
    message_chars: int
    docs: int
    doc_chars: int


def shape(label: str) -> Shape:
    """Return the split of the state size named ``label`` (a key of :data:`SIZES`)."""
    size = SIZES[label]
    kept = 20 if size >= 50_000 else 4
    docs = 10 if size >= 50_000 else 2
    overhead = 90  # keys, id and type of a message dict once serialised
    message_chars = max(16, int(size * (1 - DOC_SHARE) / kept) - overhead)
    doc_chars = max(16, int(size * DOC_SHARE / docs) - 40)
    return Shape(label, size, kept, message_chars, docs, doc_chars)


def _message(text: TextSource, i: int, chars: int) -> dict[str, Any]:
    kind = ("human", "ai", "tool")[i % 3]
    msg: dict[str, Any] = {"type": kind, "id": f"msg-{i:05d}", "content": text.text(chars)}
    if kind == "ai":
        msg["tool_calls"] = [{"name": "search", "id": f"call-{i:05d}", "args": {"q": "docs"}}]
    elif kind == "tool":
        msg["tool_call_id"] = f"call-{i - 1:05d}"
    return msg


@dataclass(frozen=True)
class StepPlan:
    """What one loop step writes.

    Attributes:
        step: The step number (1..N-1).
        node: The node that ran (``agent`` or ``tools``).
        task_id: Its task id.
        message: The message it appends.
        document: ``(index, document)`` it replaces, or ``None``.
    """

    step: int
    node: str
    task_id: str
    message: dict[str, Any]
    document: tuple[int, dict[str, Any]] | None


@dataclass(frozen=True)
class ThreadPlan:
    """The content of one thread, shared by all savers.

    Attributes:
        shape: The state's split.
        messages: The initial history.
        documents: The initial documents.
        steps: The loop steps (N-1 of them for a thread of N checkpoints).
    """

    shape: Shape
    messages: list[dict[str, Any]]
    documents: list[dict[str, Any]]
    steps: list[StepPlan]


def make_plan(label: str, n_checkpoints: int, seed: int) -> ThreadPlan:
    """Generate a thread of ``n_checkpoints`` checkpoints with a state of size ``label``."""
    sh = shape(label)
    text = TextSource(seed)
    system = {"type": "system", "id": "msg-sys", "content": text.text(sh.message_chars)}
    messages = [system] + [_message(text, i, sh.message_chars) for i in range(1, sh.kept)]
    documents = [
        {"id": f"doc-{d}", "source": f"kb://articles/{d}", "text": text.text(sh.doc_chars)}
        for d in range(sh.docs)
    ]
    rng = random.Random(seed + 1)
    steps: list[StepPlan] = []
    for n in range(1, n_checkpoints):
        doc: tuple[int, dict[str, Any]] | None = None
        if n % DOC_EVERY == 0:
            d = rng.randrange(sh.docs)
            doc = (
                d,
                {"id": f"doc-{d}-{n}", "source": f"kb://a/{n}", "text": text.text(sh.doc_chars)},
            )
        task_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        steps.append(
            StepPlan(
                step=n,
                node="agent" if n % 2 else "tools",
                task_id=task_id,
                message=_message(text, sh.kept + n, sh.message_chars),
                document=doc,
            )
        )
    return ThreadPlan(sh, messages, documents, steps)


Clock = Callable[[], int]


@dataclass
class ThreadDriver:
    """Drives one thread of a plan through one saver, timing each call (ns).

    Attributes:
        saver: The saver under test.
        thread_id: The thread.
        plan: The content.
        clock: A nanosecond clock.
    """

    saver: BaseCheckpointSaver[Any]
    thread_id: str
    plan: ThreadPlan
    clock: Clock
    messages: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    documents: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    versions: dict[str, Any] = field(default_factory=dict[str, Any])
    versions_seen: dict[str, dict[str, Any]] = field(default_factory=dict[str, dict[str, Any]])
    checkpoint_id: str | None = None
    step: int = -1

    def _bump(self, channel: str) -> None:
        self.versions[channel] = self.saver.get_next_version(self.versions.get(channel), None)

    def _config(self, with_id: bool = True) -> dict[str, Any]:
        conf: dict[str, Any] = {"thread_id": self.thread_id, "checkpoint_ns": ""}
        if with_id and self.checkpoint_id is not None:
            conf["checkpoint_id"] = self.checkpoint_id
        return {"configurable": conf}

    def values(self) -> dict[str, Any]:
        """Return the channel values the latest checkpoint holds."""
        return {"messages": self.messages, "documents": self.documents, "step": self.step}

    def _put(self, changed: list[str], metadata: CheckpointMetadata) -> int:
        for channel in changed:
            self._bump(channel)
        base = empty_checkpoint()
        base["channel_values"] = self.values()
        base["channel_versions"] = dict(self.versions)
        base["versions_seen"] = {k: dict(v) for k, v in self.versions_seen.items()}
        checkpoint: Checkpoint = create_checkpoint(base, None, self.step)
        new_versions = {c: self.versions[c] for c in changed}
        config: Any = self._config()
        started = self.clock()
        stored: Any = self.saver.put(config, checkpoint, metadata, new_versions)
        elapsed = self.clock() - started
        self.checkpoint_id = stored["configurable"]["checkpoint_id"]
        return elapsed

    def start(self) -> int:
        """Put the input checkpoint; return the ``put`` time."""
        self.messages = list(self.plan.messages)
        self.documents = list(self.plan.documents)
        self.step = -1
        metadata: CheckpointMetadata = {"source": "input", "step": -1, "parents": {}}
        return self._put(["messages", "documents", "step", "branch:to:agent"], metadata)

    def advance(self, index: int) -> tuple[int, int]:
        """Run loop step ``plan.steps[index]``; return the ``put_writes`` and ``put`` times."""
        sp = self.plan.steps[index]
        nxt = "tools" if sp.node == "agent" else "agent"
        writes: list[tuple[str, Any]] = [
            ("messages", sp.message),
            ("step", sp.step),
            (f"branch:to:{nxt}", None),
        ]
        if sp.document is not None:
            writes.append(("documents", sp.document[1]))
        config: Any = self._config()
        started = self.clock()
        self.saver.put_writes(config, writes, sp.task_id, f"~__pregel_pull, {sp.node}")
        writes_ns = self.clock() - started
        trigger = f"branch:to:{sp.node}"
        self.versions_seen[sp.node] = {trigger: self.versions.get(trigger)}
        self.messages = [self.messages[0], *self.messages[2:], sp.message]
        changed = ["messages", "step", f"branch:to:{nxt}"]
        if sp.document is not None:
            d, doc = sp.document
            self.documents = [*self.documents[:d], doc, *self.documents[d + 1 :]]
            changed.append("documents")
        self.step = sp.step
        metadata: CheckpointMetadata = {"source": "loop", "step": sp.step, "parents": {}}
        return writes_ns, self._put(changed, metadata)

    def get_latest(self) -> tuple[int, bool]:
        """Time ``get_tuple`` of the latest checkpoint; also say whether it is the one put last."""
        config: Any = self._config(with_id=False)
        started = self.clock()
        found = self.saver.get_tuple(config)
        elapsed = self.clock() - started
        ok = found is not None and found.checkpoint["id"] == self.checkpoint_id
        return elapsed, ok

    def list_all(self) -> tuple[int, int]:
        """Time ``list`` of the whole thread, consumed to the end; return it and the count."""
        config: Any = {"configurable": {"thread_id": self.thread_id}}
        started = self.clock()
        count = sum(1 for _ in self.saver.list(config))
        return self.clock() - started, count

    def verify(self) -> str | None:
        """Check the newest checkpoint's values round-trip, read and listed; say what is wrong."""
        found = self.saver.get_tuple(self._config(with_id=False))  # type: ignore[arg-type]
        if found is None:
            return "latest checkpoint missing"
        values = found.checkpoint["channel_values"]
        for channel, expected in self.values().items():
            if values.get(channel) != expected:
                return f"channel {channel!r} differs after a round trip"
        listed = next(iter(self.saver.list(self._config(with_id=False), limit=1)), None)  # type: ignore[arg-type]
        if listed is None or listed.checkpoint["channel_values"] != values:
            return "the newest checkpoint listed differs from the one read"
        return None
