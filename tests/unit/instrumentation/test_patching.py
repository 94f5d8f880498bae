"""Lazy patches: applied when their module is imported, undone (or disarmed) together."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import wrapt
from structlog.testing import capture_logs

from agentmesh.instrumentation._patching import PatchSet

SOURCE = """
class Greeter:
    def hello(self, name):
        return f"hello {name}"

def shout(text):
    return text.upper()
"""


@pytest.fixture
def make_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], str]]:
    monkeypatch.syspath_prepend(str(tmp_path))
    names: list[str] = []

    def make(name: str) -> str:
        (tmp_path / f"{name}.py").write_text(SOURCE)
        names.append(name)
        return name

    yield make
    for name in names:
        sys.modules.pop(name, None)


def _suffix(suffix: str) -> Callable[[], Callable[..., Any]]:
    def factory() -> Callable[..., Any]:
        def wrapper(wrapped: Callable[..., str], instance: Any, args: Any, kwargs: Any) -> str:
            return wrapped(*args, **kwargs) + suffix

        return wrapper

    return factory


def test_patch_waits_for_the_import(make_module: Callable[[str], str]) -> None:
    name = make_module("am_lazy_target")
    built: list[str] = []

    def factory() -> Callable[..., Any]:
        built.append("x")
        return _suffix("!")()

    patches = PatchSet("test")
    patches.add(name, "Greeter.hello", factory)
    patches.apply()
    assert name not in sys.modules
    assert built == []  # nothing imported, nothing built

    module = importlib.import_module(name)
    assert module.Greeter().hello("bob") == "hello bob!"
    assert built == ["x"]
    patches.remove()
    assert module.Greeter().hello("bob") == "hello bob"
    assert not isinstance(vars(module.Greeter)["hello"], wrapt.ObjectProxy)


def test_remove_before_import_disarms_the_hook(make_module: Callable[[str], str]) -> None:
    name = make_module("am_disarmed_target")
    patches = PatchSet("test")
    patches.add(name, "shout", _suffix("?"))
    patches.apply()
    patches.remove()

    module = importlib.import_module(name)
    assert module.shout("hi") == "HI"
    assert patches.applied_count == 0


def test_missing_target_is_skipped_and_others_applied(make_module: Callable[[str], str]) -> None:
    name = make_module("am_partial_target")
    module = importlib.import_module(name)
    patches = PatchSet("test")
    patches.add(name, "does_not_exist", _suffix("?"), optional=True)
    patches.add(name, "shout", _suffix("?"))
    patches.apply()

    assert module.shout("hi") == "HI?"
    assert patches.applied_count == 1
    patches.remove()


def test_a_wrapper_stacked_on_ours_keeps_working_after_remove(
    make_module: Callable[[str], str],
) -> None:
    name = make_module("am_stacked_target")
    module = importlib.import_module(name)
    patches = PatchSet("test")
    patches.add(name, "shout", _suffix("?"))
    patches.apply()
    wrapt.wrap_function_wrapper(module, "shout", _suffix("#")())
    assert module.shout("hi") == "HI?#"

    patches.remove()

    assert module.shout("hi") == "HI#"  # ours became a pass-through; theirs is untouched


def test_by_default_we_never_stack_on_another_wrapper(make_module: Callable[[str], str]) -> None:
    name = make_module("am_never_stack_target")
    module = importlib.import_module(name)
    wrapt.wrap_function_wrapper(module, "shout", _suffix("#")())
    patches = PatchSet("test")
    patches.add(name, "shout", _suffix("?"))
    patches.apply()

    assert module.shout("hi") == "HI#"
    assert patches.applied_count == 0


def test_stack_wraps_over_another_wrapper_and_remove_restores_it(
    make_module: Callable[[str], str],
) -> None:
    name = make_module("am_stack_target")
    module = importlib.import_module(name)
    wrapt.wrap_function_wrapper(module, "shout", _suffix("#")())
    patches = PatchSet("test")
    patches.add(name, "shout", _suffix("?"), stack=True)
    patches.apply()
    assert module.shout("hi") == "HI#?"  # ours is the outer one

    patches.remove()

    assert module.shout("hi") == "HI#"


def test_stack_never_wraps_our_own_wrapper_twice(make_module: Callable[[str], str]) -> None:
    name = make_module("am_stack_twice_target")
    module = importlib.import_module(name)
    first, second = PatchSet("first"), PatchSet("second")
    first.add(name, "shout", _suffix("?"), stack=True)
    second.add(name, "shout", _suffix("!"), stack=True)
    first.apply()
    second.apply()
    first.apply()  # applied again without remove

    assert module.shout("hi") == "HI?"
    assert (first.applied_count, second.applied_count) == (1, 0)
    first.remove()
    assert module.shout("hi") == "hi".upper()


PACKAGE_INIT = """
from . import api  # imported before MARK is bound, as openai 1.40 imports its resources
MARK = "!"
"""


@pytest.fixture
def half_imported_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A package whose ``__init__`` imports the patched module before binding ``MARK``."""
    name = "am_half_imported"
    (tmp_path / name).mkdir()
    (tmp_path / name / "__init__.py").write_text(PACKAGE_INIT)
    (tmp_path / name / "api.py").write_text(SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    for module in (name, f"{name}.api"):
        sys.modules.pop(module, None)


def _reads_the_package(name: str) -> Callable[[], Callable[..., Any]]:
    def factory() -> Callable[..., Any]:
        return _suffix(sys.modules[name].MARK)()  # AttributeError while the package imports

    return factory


def test_a_wrapper_that_needs_the_whole_package_is_built_at_the_first_call(
    half_imported_package: str,
) -> None:
    name = half_imported_package
    patches = PatchSet("test")
    patches.add(f"{name}.api", "shout", _reads_the_package(name))
    patches.apply()

    with capture_logs() as logs:
        package = importlib.import_module(name)
        assert package.api.shout("hi") == "HI!"
    assert logs == []  # built late, not failed
    assert patches.applied_count == 1
    patches.remove()
    assert package.api.shout("hi") == "HI"


def test_a_wrapper_that_cannot_be_built_is_reported_once_and_calls_go_through(
    make_module: Callable[[str], str],
) -> None:
    name = make_module("am_unbuildable_target")
    module = importlib.import_module(name)

    def factory() -> Callable[..., Any]:
        raise RuntimeError("bug in our wrapper")

    patches = PatchSet("test")
    patches.add(name, "shout", factory)
    with capture_logs() as logs:
        patches.apply()
        assert [module.shout("hi"), module.shout("ho")] == ["HI", "HO"]
    assert [(log["where"], log["error"]) for log in logs] == [
        (f"test.patch:{name}.shout", "bug in our wrapper")
    ]
    patches.remove()
