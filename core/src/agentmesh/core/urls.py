"""URLs in messages: :func:`masked_url` hides a password, keeps the rest for the reader.

Example:
    >>> masked_url("postgresql://app:s3cret@db.internal:5432/agentmesh")
    'postgresql://app:***@db.internal:5432/agentmesh'
    >>> masked_url("redis://127.0.0.1:6379/0")
    'redis://127.0.0.1:6379/0'
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

__all__ = ["masked_url"]


def masked_url(url: str) -> str:
    """Return ``url`` with its password replaced by ``***``.

    Args:
        url: Any URL (one that does not parse is returned as it is).

    Returns:
        The URL, safe to log.
    """
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.rsplit("@", 1)
        user = netloc[0].split(":", 1)[0]
        return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))
    except ValueError:
        return url
