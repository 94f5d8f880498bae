"""The DuckDB checkpoint schema as numbered migrations, applied in order when a file is opened.

Tables (all prefixed ``ckpt_`` so the file may also hold other AgentMesh tables):

* ``ckpt_checkpoints``: one row per ``(thread_id, namespace, checkpoint_id)``: the checkpoint
  document (``type``, ``data``), metadata as JSON text, the channel versions as two parallel
  lists (``channels``, ``versions``), the writing run and the put time (``created_at``, Unix
  seconds, the store's clock).
* ``ckpt_blobs``: one row per ``(thread_id, namespace, channel, version)``: a channel value.
* ``ckpt_writes``: one row per ``(thread_id, namespace, checkpoint_id, task_id, idx)``: a
  pending write.
* ``ckpt_migrations``: one row per applied migration (version, name, time applied).

``ckpt_blobs`` and ``ckpt_writes`` are keyed by one ``key`` column that spells their key's
parts, each as its UTF-8 length, a colon and itself (``1:t0:7:channel1:3``: thread ``t``,
namespace ``""``, channel ``channel``, version ``3``), rather than by a compound primary key:
DuckDB answers an equality or ``IN`` on a single-column key with an index lookup, but scans the
table for a compound one, and a scan reads every value's bytes (300 ms for one 1 MiB value
among 300, against 3 ms by key).

A migration is a version number, a name and its statements; each runs in its own transaction
together with the row that records it, so a file is never left half-migrated. Versions are
never renumbered or edited once released: a schema change is a new migration appended to
:data:`MIGRATIONS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = [
    "CREATE_MIGRATIONS_TABLE",
    "MIGRATIONS",
    "MIGRATIONS_TABLE",
    "SCHEMA_VERSION",
    "Migration",
]


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step.

    Attributes:
        version: Its number (1, 2, …; applied in this order).
        name: A short description, stored with it.
        statements: The DDL/DML it runs, in one transaction.
    """

    version: int
    name: str
    statements: tuple[str, ...]


MIGRATIONS_TABLE: Final = "ckpt_migrations"
"""The table that records applied migrations."""

CREATE_MIGRATIONS_TABLE: Final = f"""
    CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (
        version INTEGER PRIMARY KEY,
        name VARCHAR NOT NULL,
        applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp
    )
"""

MIGRATIONS: Final[tuple[Migration, ...]] = (
    Migration(
        1,
        "checkpoints, blobs and writes",
        (
            """
            CREATE TABLE ckpt_checkpoints (
                thread_id VARCHAR NOT NULL,
                namespace VARCHAR NOT NULL,
                checkpoint_id VARCHAR NOT NULL,
                parent_id VARCHAR,
                type VARCHAR NOT NULL,
                data BLOB NOT NULL,
                metadata VARCHAR NOT NULL,
                channels VARCHAR[] NOT NULL,
                versions VARCHAR[] NOT NULL,
                run_id VARCHAR,
                created_at DOUBLE NOT NULL,
                PRIMARY KEY (thread_id, namespace, checkpoint_id)
            )
            """,
            """
            CREATE TABLE ckpt_blobs (
                key VARCHAR PRIMARY KEY,
                thread_id VARCHAR NOT NULL,
                namespace VARCHAR NOT NULL,
                channel VARCHAR NOT NULL,
                version VARCHAR NOT NULL,
                type VARCHAR NOT NULL,
                data BLOB NOT NULL
            )
            """,
            """
            CREATE TABLE ckpt_writes (
                key VARCHAR PRIMARY KEY,
                thread_id VARCHAR NOT NULL,
                namespace VARCHAR NOT NULL,
                checkpoint_id VARCHAR NOT NULL,
                task_id VARCHAR NOT NULL,
                idx INTEGER NOT NULL,
                task_path VARCHAR NOT NULL,
                channel VARCHAR NOT NULL,
                type VARCHAR NOT NULL,
                data BLOB NOT NULL
            )
            """,
        ),
    ),
)
"""Every migration, oldest first."""

SCHEMA_VERSION: Final = MIGRATIONS[-1].version
"""The version a file has once this code opened it."""
