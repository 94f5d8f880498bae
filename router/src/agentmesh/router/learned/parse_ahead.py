"""Predictors parsed ahead of use: a new route table's predictor is parsed off the hot path.

A route table carries its predictor as JSON data; turning it into a :class:`Predictor` takes
milliseconds (about 6 ms for 11 models and 32 clusters, 90 ms for 1,000 models). The learned
policy needs it on the first decision after the table changes, which is a provider call of
the application. So whoever receives a new table (the route table client's background thread)
calls :func:`parse_ahead` before handing the table out, and the policy takes the parsed
predictor with :func:`parsed`: the application's call pays a dictionary lookup. The parse is
also the predictor's check: the route table client refuses a table whose predictor is invalid
(``keep_invalid=False``: nothing of it is held) and keeps the table it has.

Only the last two tables are held (strongly, so that a table's ``id`` is not reused while its
entry lives): the one in force and the one arriving. A table nobody parsed ahead is parsed by
the policy itself, as before. Each policy reading the same table object shares its predictor;
a table built anew gets its own.

Freeing is kept off the hot path too: what a decision stops using when the table changes (the
previous table, its predictor, the rankings made with them) goes to :func:`retire`, and the
next :func:`parse_ahead` frees it, in the route table client's thread. Freeing a predictor of
1,000 models takes about 3 ms, which the first decision after a change used to pay.

Example:
    >>> from agentmesh.router.learned.quality import QualityModel
    >>> from agentmesh.router.table import RouteTable
    >>> table = RouteTable(version=1, predictor=Predictor(QualityModel()).to_dict())
    >>> parsed(table) is None
    True
    >>> parse_ahead(table).error is None
    True
    >>> isinstance(parsed(table), ParsedPredictor)
    True
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

from agentmesh.router.learned.predictor import Predictor
from agentmesh.router.table import RouteTable

__all__ = ["ParsedPredictor", "parse", "parse_ahead", "parsed", "retire"]

_HELD: Final = 2  # the table in force and the one arriving (a parsed table can be large)
_MAX_RETIRED: Final = 4  # two table changes; past this (nobody parses ahead) the oldest is freed
_lock = threading.Lock()
_recent: OrderedDict[int, tuple[RouteTable, ParsedPredictor]] = OrderedDict()
_retired: list[object] = []


@dataclass(frozen=True, slots=True)
class ParsedPredictor:
    """A table's predictor, parsed.

    Attributes:
        predictor: The predictor; ``None`` when the table has none or it is invalid.
        error: Why it is invalid, in words; ``None`` when it is not.
    """

    predictor: Predictor | None
    error: str | None = None


_NO_PREDICTOR: Final = ParsedPredictor(None)


def parse(table: RouteTable) -> ParsedPredictor:
    """Parse a table's predictor now (never raises).

    Args:
        table: The route table.

    Returns:
        The predictor, or why there is none.
    """
    if table.predictor is None:
        return _NO_PREDICTOR
    try:
        predictor = Predictor.from_dict(table.predictor)
        predictor.quality.warm()  # the first decisions after the change then look them up
        return ParsedPredictor(predictor)
    except (ValueError, TypeError) as exc:  # what from_dict says of malformed data
        return ParsedPredictor(None, str(exc) or type(exc).__name__)
    except Exception as exc:  # noqa: BLE001 - anything else: no predictor, said once, not raised
        return ParsedPredictor(None, f"{type(exc).__name__}: {exc}")


def parse_ahead(table: RouteTable, *, keep_invalid: bool = True) -> ParsedPredictor:
    """Parse a table's predictor now, in the caller's thread, for :func:`parsed` to find.

    Args:
        table: The route table about to be handed out.
        keep_invalid: Whether an invalid predictor's result is kept too (the policy then logs
            its error without parsing it again); ``False`` for a caller that refuses such a
            table, so that a table never handed out takes no place among those held.

    Returns:
        The parsed predictor, or why there is none (``error``: it is invalid).
    """
    with _lock:
        retired = _retired[:]
        _retired.clear()
    del retired  # freed here, not in a decision
    if table.predictor is None:
        return _NO_PREDICTOR
    ready = parsed(table)
    if ready is not None:
        return ready
    result = parse(table)
    if result.error is not None and not keep_invalid:
        return result
    dropped: list[tuple[RouteTable, ParsedPredictor]] = []
    with _lock:
        _recent[id(table)] = (table, result)
        while len(_recent) > _HELD:
            dropped.append(_recent.popitem(last=False)[1])
    del dropped  # freed outside the lock
    return result


def retire(gone: object) -> None:
    """Keep what a decision stopped using until the next :func:`parse_ahead` frees it.

    Args:
        gone: The previous table, predictor or memo (anything; only a reference is kept).

    Example:
        >>> retire(object())
        >>> parse_ahead(RouteTable(version=1)).predictor is None  # no predictor; retired freed
        True
    """
    oldest: object = None
    with _lock:
        _retired.append(gone)
        if len(_retired) > _MAX_RETIRED:
            oldest = _retired.pop(0)
    del oldest  # freed here only when nobody parses ahead


def parsed(table: RouteTable) -> ParsedPredictor | None:
    """Return a table's predictor if it was parsed ahead, else ``None`` (never blocks long).

    Args:
        table: The route table in force.

    Returns:
        The parsed predictor, or ``None`` when nobody parsed it ahead.
    """
    entry = _recent.get(id(table))
    return entry[1] if entry is not None and entry[0] is table else None
