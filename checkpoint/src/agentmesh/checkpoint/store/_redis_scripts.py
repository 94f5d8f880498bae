r"""The Redis checkpoint layout: key names, Lua scripts and value encodings, in one place.

Both :class:`~agentmesh.checkpoint.store.redis.RedisCheckpointStore` (asyncio) and
:class:`~agentmesh.checkpoint.store.redis.SyncRedisCheckpointStore` (blocking) use only what this
module defines, so the two cannot drift. Plain Redis 7 commands and Lua, no modules.

Keys, under a prefix ``P`` (``agentmesh:ckpt`` by default). A thread's keys start with its *base*
``P:<n>:{<thread>}`` (``n`` is the thread id's length in UTF-8 bytes, which keeps names
unambiguous; the ``{thread}`` hash tag puts a thread's keys on one cluster slot). Per namespace
``ns`` (written ``<m>:<ns>``, ``m`` its length in bytes):

- ``<base>:ns``: set of the thread's namespaces.
- ``<base>:i:<m>:<ns>``: sorted set of checkpoint ids, all scored 0, so ``ZREVRANGEBYLEX``
  walks them newest first.
- ``<base>:c:<m>:<ns>:<id>``: hash of one checkpoint: ``t``/``d`` the checkpoint blob's type and
  bytes, ``m`` metadata JSON, ``v`` channel versions JSON, ``p`` parent id and ``r`` run id
  (both absent when ``None``).
- ``<base>:b:<m>:<ns>``: hash of channel values, field ``channel\x00version``, value
  msgpack ``[type, data]``; written with ``HSETNX`` (once per version).
- ``<base>:w:<m>:<ns>:<id>``: hash of a checkpoint's pending writes, field ``task_id\x00idx``,
  value msgpack ``[task_path, channel, type, data]``.
- ``<base>:x:<m>:<ns>``: set of checkpoint ids that have pending writes (so a thread's writes
  can be found even for a checkpoint that was never put).
- ``P:threads``: set of thread ids. ``P:touched``: sorted set thread id -> Unix time (Redis
  clock, seconds) of its last checkpoint put, for retention.
- ``P:run:<run_id>``: set of the checkpoints a run wrote, members
  ``<n>:<thread><m>:<ns><id>``.

Every script builds key names with the Lua twins of the functions below (:data:`LUA_PRELUDE`)
from the prefix given as ``ARGV[1]``; scripts are called with no declared keys (the global
indexes span slots, so this layout targets a standalone Redis or a single-shard deployment).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, cast

import ormsgpack

from agentmesh.checkpoint.store.base import (
    Blob,
    CheckpointRecord,
    StoredCheckpoint,
    WriteRecord,
)
from agentmesh.core.errors import CheckpointSerdeError

__all__ = [
    "COPY_THREAD",
    "DELETE_RUNS",
    "DELETE_THREADS",
    "GET",
    "LIST",
    "LUA_PRELUDE",
    "PRUNE",
    "PUT",
    "PUT_WRITES",
    "SCRIPTS",
    "Script",
    "blob_args",
    "blob_field",
    "checkpoint_key",
    "decode_blob",
    "decode_metadata",
    "decode_stored",
    "encode_blob",
    "encode_record",
    "encode_write",
    "ids_key",
    "key_pattern",
    "namespace_key",
    "namespaces_key",
    "run_key",
    "run_member",
    "thread_base",
    "threads_key",
    "touched_key",
    "write_field",
]


# --- key names (Python side; LUA_PRELUDE below must build the same names) ----------------------


def _n(text: str) -> int:
    return len(text.encode())


def thread_base(prefix: str, thread_id: str) -> str:
    """Return the start of every key of a thread.

    Args:
        prefix: The store's key prefix.
        thread_id: The thread.

    Returns:
        ``prefix:<bytes>:{thread}``.

    Example:
        >>> thread_base("p", "t1")
        'p:2:{t1}'
    """
    return f"{prefix}:{_n(thread_id)}:{{{thread_id}}}"


def namespaces_key(base: str) -> str:
    """Return the set of a thread's namespaces.

    Args:
        base: The thread's :func:`thread_base`.

    Returns:
        The key.
    """
    return f"{base}:ns"


def namespace_key(base: str, kind: str, namespace: str) -> str:
    """Return a per-namespace key of a thread (``i`` ids, ``b`` blobs, ``x`` ids with writes).

    Args:
        base: The thread's :func:`thread_base`.
        kind: One letter naming the structure.
        namespace: The checkpoint namespace.

    Returns:
        The key.

    Example:
        >>> namespace_key("p:2:{t1}", "i", "")
        'p:2:{t1}:i:0:'
    """
    return f"{base}:{kind}:{_n(namespace)}:{namespace}"


def ids_key(base: str, namespace: str) -> str:
    """Return the sorted set of a namespace's checkpoint ids.

    Args:
        base: The thread's :func:`thread_base`.
        namespace: The checkpoint namespace.

    Returns:
        The key.
    """
    return namespace_key(base, "i", namespace)


def checkpoint_key(base: str, kind: str, namespace: str, checkpoint_id: str) -> str:
    """Return a per-checkpoint key (``c`` the record hash, ``w`` its writes).

    Args:
        base: The thread's :func:`thread_base`.
        kind: ``"c"`` or ``"w"``.
        namespace: The checkpoint namespace.
        checkpoint_id: The checkpoint.

    Returns:
        The key.
    """
    return f"{namespace_key(base, kind, namespace)}:{checkpoint_id}"


def threads_key(prefix: str) -> str:
    """Return the set of every thread id.

    Args:
        prefix: The store's key prefix.

    Returns:
        The key.
    """
    return f"{prefix}:threads"


def touched_key(prefix: str) -> str:
    """Return the sorted set of threads by the time of their last checkpoint put.

    Args:
        prefix: The store's key prefix.

    Returns:
        The key.
    """
    return f"{prefix}:touched"


def run_key(prefix: str, run_id: str) -> str:
    """Return the set of checkpoints a run wrote.

    Args:
        prefix: The store's key prefix.
        run_id: The run.

    Returns:
        The key.
    """
    return f"{prefix}:run:{run_id}"


def run_member(thread_id: str, namespace: str, checkpoint_id: str) -> str:
    """Return the member naming one checkpoint in a run's set.

    Args:
        thread_id: The thread.
        namespace: The namespace.
        checkpoint_id: The checkpoint.

    Returns:
        ``<bytes>:<thread><bytes>:<namespace><checkpoint_id>``.

    Example:
        >>> run_member("t1", "", "c1")
        '2:t10:c1'
    """
    return f"{_n(thread_id)}:{thread_id}{_n(namespace)}:{namespace}{checkpoint_id}"


def key_pattern(prefix: str) -> str:
    r"""Return the ``SCAN MATCH`` pattern of every key of the store.

    Args:
        prefix: The store's key prefix.

    Returns:
        The glob, with the prefix's glob characters escaped.

    Example:
        >>> key_pattern("a*b")
        'a\\*b:*'
    """
    return re.sub(r"([*?\[\]\\])", r"\\\1", prefix) + ":*"


def blob_field(channel: str, version: str) -> str:
    r"""Return the field of a channel value in the namespace's blob hash.

    Args:
        channel: The channel.
        version: Its version.

    Returns:
        ``channel\x00version``.
    """
    return f"{channel}\x00{version}"


def write_field(task_id: str, idx: int) -> str:
    r"""Return the field of a pending write in the checkpoint's write hash.

    Args:
        task_id: The task.
        idx: The write's index.

    Returns:
        ``task_id\x00idx``.
    """
    return f"{task_id}\x00{idx}"


# --- Lua ----------------------------------------------------------------------------------------

LUA_PRELUDE: Final = r"""
local PREFIX = ARGV[1]
local THREADS = PREFIX .. ':threads'
local TOUCHED = PREFIX .. ':touched'
local function base_of(thread) return PREFIX .. ':' .. #thread .. ':{' .. thread .. '}' end
local function ns_key(base, kind, ns) return base .. ':' .. kind .. ':' .. #ns .. ':' .. ns end
local function cp_key(base, kind, ns, id) return ns_key(base, kind, ns) .. ':' .. id end
local function run_key(run) return PREFIX .. ':run:' .. run end
local function member(thread, ns, id) return #thread .. ':' .. thread .. #ns .. ':' .. ns .. id end
local function split_member(m)
  local c = string.find(m, ':', 1, true)
  local tl = tonumber(string.sub(m, 1, c - 1))
  local thread = string.sub(m, c + 1, c + tl)
  local p = c + tl + 1
  local c2 = string.find(m, ':', p, true)
  local nl = tonumber(string.sub(m, p, c2 - 1))
  return thread, string.sub(m, c2 + 1, c2 + nl), string.sub(m, c2 + nl + 1)
end
local function drop_checkpoint(thread, base, ns, id)
  local ck = cp_key(base, 'c', ns, id)
  local r = redis.call('HGET', ck, 'r')
  if r then redis.call('SREM', run_key(r), member(thread, ns, id)) end
  redis.call('DEL', ck, cp_key(base, 'w', ns, id))
end
local function drop_ns(thread, base, ns)
  local ik, xk = ns_key(base, 'i', ns), ns_key(base, 'x', ns)
  local ids = redis.call('ZRANGE', ik, 0, -1)
  for _, id in ipairs(ids) do
    drop_checkpoint(thread, base, ns, id)
  end
  for _, id in ipairs(redis.call('SMEMBERS', xk)) do
    redis.call('DEL', cp_key(base, 'w', ns, id))
  end
  redis.call('DEL', ik, xk, ns_key(base, 'b', ns))
  redis.call('SREM', base .. ':ns', ns)
  return #ids
end
local function forget_if_empty(thread, base)
  if redis.call('SCARD', base .. ':ns') == 0 then
    redis.call('SREM', THREADS, thread)
    redis.call('ZREM', TOUCHED, thread)
  end
end
local function drop_thread(thread)
  local base = base_of(thread)
  local n = 0
  for _, ns in ipairs(redis.call('SMEMBERS', base .. ':ns')) do
    n = n + drop_ns(thread, base, ns)
  end
  redis.call('DEL', base .. ':ns')
  forget_if_empty(thread, base)
  return n
end
local function each_chunk(cmd, key, items)
  for s = 1, #items, 1000 do
    redis.call(cmd, key, unpack(items, s, math.min(s + 999, #items)))
  end
end
"""
"""Lua helpers every script starts with: key names (the twins of the Python functions), run
members, and dropping a checkpoint, a namespace or a thread with its index entries."""


@dataclass(frozen=True, slots=True)
class Script:
    """A Lua script, run with ``EVALSHA`` (``EVAL`` when the server lost it).

    Attributes:
        name: Short name, for messages.
        source: The full source (prelude included).
        sha: Its SHA1, as ``SCRIPT LOAD`` returns it.
    """

    name: str
    source: str
    sha: str


def _script(name: str, body: str) -> Script:
    source = LUA_PRELUDE + body
    return Script(name, source, hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest())


PUT: Final = _script(
    "put",
    r"""
-- ARGV: prefix, thread, ns, id, mode ('0' no check, '1' check extends = ARGV[6], '2' check
-- empty), extends, run ('' when has_run = '0'), has_run, n, n record args, blob field/value pairs
local thread, ns, id = ARGV[2], ARGV[3], ARGV[4]
local base = base_of(thread)
local ik, ck = ns_key(base, 'i', ns), cp_key(base, 'c', ns, id)
local cur = redis.call('HMGET', ck, 't', 'r')
if not cur[1] and ARGV[5] ~= '0' then
  local top = redis.call('ZREVRANGEBYLEX', ik, '+', '-', 'LIMIT', 0, 1)[1]
  local want = nil
  if ARGV[5] == '1' then want = ARGV[6] end
  if top ~= want then
    if top then return {'conflict', top} end
    return {'conflict'}
  end
end
if cur[1] then redis.call('DEL', ck) end
local n = tonumber(ARGV[9])
redis.call('HSET', ck, unpack(ARGV, 10, 9 + n))
local bk = ns_key(base, 'b', ns)
for i = 10 + n, #ARGV, 2 do redis.call('HSETNX', bk, ARGV[i], ARGV[i + 1]) end
redis.call('ZADD', ik, 0, id)
redis.call('SADD', base .. ':ns', ns)
redis.call('SADD', THREADS, thread)
local now = redis.call('TIME')
redis.call('ZADD', TOUCHED, now[1] .. '.' .. string.format('%06d', tonumber(now[2])), thread)
local run = false
if ARGV[8] == '1' then run = ARGV[7] end
if cur[2] and cur[2] ~= run then redis.call('SREM', run_key(cur[2]), member(thread, ns, id)) end
if run then redis.call('SADD', run_key(run), member(thread, ns, id)) end
return 1
""",
)
"""Compare-and-set, then the record, its new blobs and every index, atomically."""

PUT_WRITES: Final = _script(
    "put_writes",
    r"""
-- ARGV: prefix, thread, ns, id, then (field, value, upsert '1'|'0') triples
local thread, ns, id = ARGV[2], ARGV[3], ARGV[4]
local base = base_of(thread)
local wk = cp_key(base, 'w', ns, id)
for i = 5, #ARGV, 3 do
  if ARGV[i + 2] == '1' then
    redis.call('HSET', wk, ARGV[i], ARGV[i + 1])
  else
    redis.call('HSETNX', wk, ARGV[i], ARGV[i + 1])
  end
end
redis.call('SADD', ns_key(base, 'x', ns), id)
redis.call('SADD', base .. ':ns', ns)
redis.call('SADD', THREADS, thread)
return 1
""",
)
"""Pending writes: insert-if-absent for ``idx >= 0``, replace for special writes."""

_FRAMED: Final = r"""
-- framed(base, ns, id, skip, seen): one checkpoint as one string (a single bulk reply parses
-- far faster than nested arrays) of items '<bytes>:<item>' ('-:' for none): id, t d m v p r of
-- the record, the number of values, channel/value pairs, then the write hash's field/value
-- pairs; false when the checkpoint is gone. Channels in skip are not read (the caller holds
-- them). Values are passed through Lua only up to INLINE bytes in all; the others are left out
-- ('-:') and the client reads them with a plain HMGET (Lua copies big strings several times
-- over: a 1 MB state in 33 values took 3.9 ms to read with a 64 KB limit per value, 1.6 ms
-- with 16 KB in all). With a seen table, a value this call sent already (same blob hash and
-- field) is sent as '=:', and the value sent is added to it.
local INLINE = 16384
local function framed(base, ns, id, skip, seen)
  local rec = redis.call('HMGET', cp_key(base, 'c', ns, id), 't', 'd', 'm', 'v', 'p', 'r')
  if not rec[1] then return false end
  local inlined = 0
  local v = rec[4]
  local out = {}
  if v and v ~= '{}' then
    local names, fields = {}, {}
    for ch, ver in pairs(cjson.decode(v)) do
      if not skip[ch] then
        names[#names + 1] = ch
        fields[#fields + 1] = ch .. '\0' .. ver
      end
    end
    local bk = ns_key(base, 'b', ns)
    for i = 1, #fields do
      local sent = seen and (bk .. '\0' .. fields[i])
      if sent and seen[sent] then
        out[#out + 1] = names[i]
        out[#out + 1] = true
      else
        local size = redis.call('HSTRLEN', bk, fields[i])
        if inlined + size > INLINE then  -- passing it through Lua costs more than a plain read
          out[#out + 1] = names[i]
          out[#out + 1] = false
        elseif size > 0 then
          inlined = inlined + size
          out[#out + 1] = names[i]
          out[#out + 1] = redis.call('HGET', bk, fields[i])
          if sent then seen[sent] = true end
        end
      end
    end
  end
  local parts = {}
  local function add(x)
    if x == true then
      parts[#parts + 1] = '=:'
    elseif x then
      parts[#parts + 1] = #x .. ':'
      parts[#parts + 1] = x
    else
      parts[#parts + 1] = '-:'
    end
  end
  add(id)
  for i = 1, 6 do add(rec[i]) end
  add(tostring(#out / 2))
  for i = 1, #out do add(out[i]) end
  for _, x in ipairs(redis.call('HGETALL', cp_key(base, 'w', ns, id))) do add(x) end
  return table.concat(parts)
end
"""

GET: Final = _script(
    "get",
    _FRAMED
    + r"""
-- ARGV: prefix, thread, ns, id, has_id ('1' | '0': newest), then channels whose values are
-- not read (the caller holds them); returns false, or the checkpoint framed
local base = base_of(ARGV[2])
local ns, id = ARGV[3], ARGV[4]
if ARGV[5] == '0' then
  id = redis.call('ZREVRANGEBYLEX', ns_key(base, 'i', ns), '+', '-', 'LIMIT', 0, 1)[1]
  if not id then return false end
end
local skip = {}
for i = 6, #ARGV do skip[ARGV[i]] = true end
return framed(base, ns, id, skip, nil)
""",
)
"""The given (or newest) checkpoint with its channel values and pending writes."""

LIST: Final = _script(
    "list",
    _FRAMED
    + r"""
-- ARGV: prefix, then (thread, ns, id) triples; returns each checkpoint framed (false when
-- gone), in order, every value sent once for the whole call
local seen, out = {}, {}
for i = 2, #ARGV, 3 do
  out[#out + 1] = framed(base_of(ARGV[i]), ARGV[i + 1], ARGV[i + 2], {}, seen)
end
return out
""",
)
"""Checkpoints of a listing's page, their shared values sent once (see :func:`decode_stored`)."""

DELETE_THREADS: Final = _script(
    "delete_threads",
    r"""
-- ARGV: prefix, cutoff ('' = unconditional), thread ids; returns how many threads were
-- deleted and how many checkpoints they held
local cutoff = nil
if ARGV[2] ~= '' then cutoff = tonumber(ARGV[2]) end
local n, checkpoints = 0, 0
for i = 3, #ARGV do
  local ok = true
  if cutoff then
    local s = redis.call('ZSCORE', TOUCHED, ARGV[i])
    ok = s and tonumber(s) < cutoff
  end
  if ok then
    checkpoints = checkpoints + drop_thread(ARGV[i])
    n = n + 1
  end
end
return {n, checkpoints}
""",
)
"""Whole threads; with a cutoff only those whose last put is still older (retention).

Returns ``[threads, checkpoints]`` deleted."""

DELETE_RUNS: Final = _script(
    "delete_runs",
    r"""
-- ARGV: prefix, run ids
for i = 2, #ARGV do
  local rk = run_key(ARGV[i])
  for _, m in ipairs(redis.call('SMEMBERS', rk)) do
    local thread, ns, id = split_member(m)
    local base = base_of(thread)
    local ik, xk = ns_key(base, 'i', ns), ns_key(base, 'x', ns)
    redis.call('DEL', cp_key(base, 'c', ns, id), cp_key(base, 'w', ns, id))
    redis.call('ZREM', ik, id)
    redis.call('SREM', xk, id)
    if redis.call('ZCARD', ik) == 0 and redis.call('SCARD', xk) == 0 then
      redis.call('DEL', ns_key(base, 'b', ns))
      redis.call('SREM', base .. ':ns', ns)
      forget_if_empty(thread, base)
    end
  end
  redis.call('DEL', rk)
end
return 1
""",
)
"""Checkpoints of the given runs and their writes (an emptied namespace goes whole)."""

COPY_THREAD: Final = _script(
    "copy_thread",
    r"""
-- ARGV: prefix, source thread, target thread
local src, dst = ARGV[2], ARGV[3]
if src == dst then return 0 end
local sb, db = base_of(src), base_of(dst)
local function merge_hash(from, to, cmd)
  if redis.call('EXISTS', to) == 0 then
    redis.call('COPY', from, to)
    return
  end
  local kv = redis.call('HGETALL', from)
  for i = 1, #kv, 2 do redis.call(cmd, to, kv[i], kv[i + 1]) end
end
local nss = redis.call('SMEMBERS', sb .. ':ns')
for _, ns in ipairs(nss) do
  local ids = redis.call('ZRANGE', ns_key(sb, 'i', ns), 0, -1)
  for _, id in ipairs(ids) do
    local sk, tk = cp_key(sb, 'c', ns, id), cp_key(db, 'c', ns, id)
    local old = redis.call('HGET', tk, 'r')
    if old then redis.call('SREM', run_key(old), member(dst, ns, id)) end
    redis.call('COPY', sk, tk, 'REPLACE')
    local r = redis.call('HGET', sk, 'r')
    if r then redis.call('SADD', run_key(r), member(dst, ns, id)) end
    redis.call('ZADD', ns_key(db, 'i', ns), 0, id)
  end
  for _, id in ipairs(redis.call('SMEMBERS', ns_key(sb, 'x', ns))) do
    merge_hash(cp_key(sb, 'w', ns, id), cp_key(db, 'w', ns, id), 'HSETNX')
    redis.call('SADD', ns_key(db, 'x', ns), id)
  end
  merge_hash(ns_key(sb, 'b', ns), ns_key(db, 'b', ns), 'HSETNX')
  redis.call('SADD', db .. ':ns', ns)
end
if #nss > 0 then redis.call('SADD', THREADS, dst) end
local when = redis.call('ZSCORE', TOUCHED, src)
if when then redis.call('ZADD', TOUCHED, 'GT', when, dst) end
return #nss
""",
)
"""Every checkpoint, blob and write of one thread under another thread id."""

PRUNE: Final = _script(
    "prune",
    r"""
-- ARGV: prefix, keep_latest ('1' | '0'), thread ids; returns how many checkpoints it deleted
local deleted = 0
for i = 3, #ARGV do
  local thread = ARGV[i]
  if ARGV[2] == '0' then
    deleted = deleted + drop_thread(thread)
  else
    local base = base_of(thread)
    for _, ns in ipairs(redis.call('SMEMBERS', base .. ':ns')) do
      local ik, xk, bk = ns_key(base, 'i', ns), ns_key(base, 'x', ns), ns_key(base, 'b', ns)
      local ids = redis.call('ZRANGE', ik, 0, -1)
      if #ids == 0 then
        drop_ns(thread, base, ns)
      else
        local newest = ids[#ids]
        local old = {}
        for j = 1, #ids - 1 do
          drop_checkpoint(thread, base, ns, ids[j])
          old[#old + 1] = ids[j]
        end
        each_chunk('ZREM', ik, old)
        deleted = deleted + #old
        for _, id in ipairs(redis.call('SMEMBERS', xk)) do
          if id ~= newest then
            redis.call('DEL', cp_key(base, 'w', ns, id))
            redis.call('SREM', xk, id)
          end
        end
        local keep = {}
        local v = redis.call('HGET', cp_key(base, 'c', ns, newest), 'v')
        if v then
          for ch, ver in pairs(cjson.decode(v)) do keep[ch .. '\0' .. ver] = true end
        end
        local gone = {}
        for _, f in ipairs(redis.call('HKEYS', bk)) do
          if not keep[f] then gone[#gone + 1] = f end
        end
        each_chunk('HDEL', bk, gone)
      end
    end
    forget_if_empty(thread, base)
  end
end
return deleted
""",
)
"""Keep the newest checkpoint per namespace (its writes and the blobs it refers to), or none.

Returns the number of checkpoints deleted."""

SCRIPTS: Final = (PUT, PUT_WRITES, GET, LIST, DELETE_THREADS, DELETE_RUNS, COPY_THREAD, PRUNE)
"""Every script, loaded when a store opens."""


# --- values -------------------------------------------------------------------------------------


_ENCODER: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _json(value: object, what: str) -> str:
    try:
        return _ENCODER.encode(value)
    except (TypeError, ValueError) as exc:
        raise CheckpointSerdeError(f"redis checkpoint store: {what} is not JSON: {exc}") from exc


def encode_blob(blob: Blob) -> bytes:
    """Encode a channel value for the blob hash.

    Args:
        blob: The value.

    Returns:
        msgpack ``[type, data]``.
    """
    return ormsgpack.packb((blob.type, blob.data))


def encode_write(write: WriteRecord) -> bytes:
    """Encode a pending write for the write hash (the field holds task id and index).

    Args:
        write: The write.

    Returns:
        msgpack ``[task_path, channel, type, data]``.
    """
    return ormsgpack.packb((write.task_path, write.channel, write.value.type, write.value.data))


def encode_record(record: CheckpointRecord) -> list[str | bytes]:
    """Return the checkpoint hash's fields and values, flat (``HSET`` arguments).

    Args:
        record: The checkpoint.

    Returns:
        ``[field, value, ...]``.

    Raises:
        CheckpointSerdeError: Metadata or channel versions are not JSON-able.
    """
    fields: list[str | bytes] = [
        "t",
        record.checkpoint.type,
        "d",
        record.checkpoint.data,
        "m",
        _json(dict(record.metadata), "metadata"),
        "v",
        _json(dict(record.channel_versions), "channel versions"),
    ]
    if record.parent_id is not None:
        fields += ["p", record.parent_id]
    if record.run_id is not None:
        fields += ["r", record.run_id]
    return fields


def decode_metadata(raw: bytes) -> dict[str, Any]:
    """Decode a checkpoint's stored metadata.

    Args:
        raw: The ``m`` field.

    Returns:
        The metadata.
    """
    return cast(dict[str, Any], json.loads(raw))


_SENT: Final = b"\x00sent before"
"""Stands, in an unframed reply, for a value the same :data:`LIST` call sent already (``=:``);
a slice of the reply is never this object."""


def _unframe(buf: bytes) -> list[bytes | None]:
    items: list[bytes | None] = []
    i, end = 0, len(buf)
    while i < end:
        j = buf.index(b":", i)
        first = buf[i]
        if first == 45:  # "-": none
            items.append(None)
            i = j + 1
            continue
        if first == 61:  # "=": sent before
            items.append(_SENT)
            i = j + 1
            continue
        k = j + 1 + int(buf[i:j])
        items.append(buf[j + 1 : k])
        i = k
    return items


def decode_stored(
    thread_id: str,
    namespace: str,
    reply: bytes,
    sent: dict[tuple[str, str, str, str], Blob] | None = None,
) -> tuple[StoredCheckpoint, list[str]]:
    """Decode a checkpoint as the :data:`GET` and :data:`LIST` scripts frame it (read once).

    Args:
        thread_id: The thread asked for.
        namespace: The namespace asked for.
        reply: The framed items (see the scripts).
        sent: For the checkpoints of one :data:`LIST` reply, decoded in order: the values the
            reply carried so far, by thread, namespace, channel and version; the values this
            checkpoint carries are added, and those it refers back to are taken from it.

    Returns:
        The checkpoint with its values and writes (ordered by task path, task id, index), and
        the channels whose values the script left out for being large (to read with ``HMGET``
        of their :func:`blob_field` s); those are not among the checkpoint's values.

    Raises:
        CheckpointSerdeError: A stored value is not in this layout's format.
    """
    try:
        frame = _unframe(reply)
        parent, run = frame[5], frame[6]
        items = [b"" if x is None else x for x in frame]
        raw_id, kind, data, metadata, versions, _, _, count = items[:8]
        record = CheckpointRecord(
            thread_id=thread_id,
            namespace=namespace,
            checkpoint_id=raw_id.decode(),
            parent_id=None if parent is None else parent.decode(),
            checkpoint=Blob(kind.decode(), data),
            metadata=decode_metadata(metadata),
            channel_versions=cast(dict[str, str], json.loads(versions)),
            run_id=None if run is None else run.decode(),
        )
        split = 8 + 2 * int(count)
        values: dict[str, Blob] = {}
        large: list[str] = []
        channel_versions = record.channel_versions
        for n in range(8, split, 2):
            raw = frame[n + 1]
            if raw is None:  # large: read apart
                large.append(items[n].decode())
                continue
            channel = items[n].decode()
            if sent is None:
                values[channel] = decode_blob(raw)
                continue
            key = (thread_id, namespace, channel, channel_versions[channel])
            if raw is _SENT:
                values[channel] = sent[key]
            else:
                values[channel] = sent[key] = decode_blob(raw)
        writes: list[WriteRecord] = []
        for n in range(split, len(items), 2):
            task_id, idx = items[n].rsplit(b"\x00", 1)
            task_path, channel, value_type, value = ormsgpack.unpackb(items[n + 1])
            writes.append(
                WriteRecord(
                    task_id=task_id.decode(),
                    task_path=cast(str, task_path),
                    idx=int(idx),
                    channel=cast(str, channel),
                    value=Blob(cast(str, value_type), cast(bytes, value)),
                )
            )
    except (ValueError, KeyError, TypeError, IndexError, ormsgpack.MsgpackDecodeError) as exc:
        raise CheckpointSerdeError(
            f"redis checkpoint store: thread {thread_id!r} (namespace {namespace!r}) holds a "
            f"value this store cannot read: {exc}"
        ) from exc
    writes.sort(key=lambda w: (w.task_path, w.task_id, w.idx))
    return StoredCheckpoint(record=record, values=values, writes=tuple(writes)), large


def decode_blob(raw: bytes) -> Blob:
    """Decode a value as :func:`encode_blob` stored it.

    Args:
        raw: The stored bytes.

    Returns:
        The blob.
    """
    blob_type, blob_data = ormsgpack.unpackb(raw)
    return Blob(cast(str, blob_type), cast(bytes, blob_data))


def blob_args(blobs: Mapping[tuple[str, str], Blob]) -> list[str | bytes]:
    """Return the blob hash's new fields and values, flat.

    Args:
        blobs: Values by ``(channel, version)``.

    Returns:
        ``[field, value, ...]``.
    """
    out: list[str | bytes] = []
    for (channel, version), blob in blobs.items():
        out += [blob_field(channel, version), encode_blob(blob)]
    return out
