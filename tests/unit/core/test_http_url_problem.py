"""HTTP URLs an application is given (a collector's control and route table): refused in words.

Each accepted URL is also split by the standard library as the long-poll clients split it (a host,
a port that is a number), so the check never accepts what a client could not connect to.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from agentmesh.core.connection_urls import http_url_problem

ACCEPTED = [
    "http://collector:4318",
    "https://otel.example.com",
    "HTTP://Collector:4318/prefix/",
    "http://[::1]:4318",
    "http://user:s3cret@collector:4318",
]

REFUSED: dict[str, str] = {
    "ftp://collector:4318": "expected an http:// or https:// URL, like http://host:4318 (not ftp://)",
    "::::": "expected an http:// or https:// URL",
    "collector:4318": "expected an http:// or https:// URL",
    "http://": "no host in the URL",
    "http://:4318": "no host in the URL",
    "http://collector:port": "the port must be a number from 1 to 65535",
    "http://collector:99999": "the port must be a number from 1 to 65535",
    "http://collector:0": "the port must be a number from 1 to 65535",
    "http://[::1": "not a valid URL",
    "http://coll ector:4318": "white space",
}


@pytest.mark.parametrize("url", ACCEPTED)
def test_a_usable_url_is_accepted(url: str) -> None:
    assert http_url_problem(url) is None
    parts = urlsplit(url)
    assert parts.hostname
    assert parts.port is None or 1 <= parts.port <= 65535


@pytest.mark.parametrize(("url", "said"), REFUSED.items())
def test_an_unusable_url_is_refused_in_words(url: str, said: str) -> None:
    problem = http_url_problem(url)
    assert problem is not None
    assert said in problem


def test_the_message_never_repeats_a_password_and_shows_the_example() -> None:
    problem = http_url_problem("http://app:s3cret@collector:port", example="http://host:4317")
    assert problem is not None
    assert "s3cret" not in problem
    assert http_url_problem("redis://h:1", example="http://host:4317") == (
        "expected an http:// or https:// URL, like http://host:4317 (not redis://)"
    )
