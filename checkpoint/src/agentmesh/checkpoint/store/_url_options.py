"""Store options carried in a checkpoint store URL's query: ``schema=`` and ``prefix=``.

A PostgreSQL store keeps its tables in a schema, a Redis store its keys under a prefix; both
are constructor arguments, and a URL names them as query options (``?schema=team_a``,
``?prefix=team:a``) so that ``AGENTMESH_CHECKPOINT_URL`` and ``agentmesh checkpoints --url`` can
reach a store opened with other values than the defaults. The drivers do not know these
options (asyncpg would send ``schema`` to the server as a setting, redis-py would pass
``prefix`` to its connections), so :func:`pop_query_option` takes them out of the URL first;
:func:`with_query_option` writes one back into the URL a store names itself by.

Example:
    >>> pop_query_option("postgresql://db/app?sslmode=require&schema=team_a", "schema")
    ('postgresql://db/app?sslmode=require', 'team_a')
    >>> with_query_option("redis://cache:6379/0", "prefix", "team:a")
    'redis://cache:6379/0?prefix=team:a'
"""

from __future__ import annotations

from urllib.parse import quote_plus, unquote_plus

from agentmesh.core.errors import ConfigError
from agentmesh.core.urls import masked_url

__all__ = ["pop_query_option", "with_query_option"]


def pop_query_option(url: str, name: str) -> tuple[str, str | None]:
    """Take an option out of a URL's query, leaving the rest of the URL as it was written.

    Args:
        url: The URL.
        name: The option's name.

    Returns:
        The URL without the option, and its value (decoded; ``None`` when the URL has none).

    Raises:
        ConfigError: The option is given more than once.
    """
    base, question, rest = url.partition("?")
    if not question:
        return url, None
    query, hash_mark, fragment = rest.partition("#")
    kept: list[str] = []
    values: list[str] = []
    for item in query.split("&"):
        key, _, value = item.partition("=")
        if unquote_plus(key) == name:
            values.append(unquote_plus(value))
        elif item:
            kept.append(item)
    if not values:
        return url, None
    if len(values) > 1:
        raise ConfigError(
            f"checkpoint store URL {masked_url(url)!r} gives {name}= {len(values)} times; "
            "give it once"
        )
    remaining = "?" + "&".join(kept) if kept else ""
    return f"{base}{remaining}{hash_mark}{fragment}", values[0]


def with_query_option(url: str, name: str, value: str) -> str:
    """Add an option at the end of a URL's query.

    Args:
        url: The URL (without that option).
        name: The option's name.
        value: Its value (encoded as a query value; ``:`` is left as it is).

    Returns:
        The URL with ``name=value`` in its query.
    """
    base, hash_mark, fragment = url.partition("#")
    joiner = "" if base.endswith(("?", "&")) else "&" if "?" in base else "?"
    return f"{base}{joiner}{name}={quote_plus(value, safe=':')}{hash_mark}{fragment}"
