"""The shared registry: duplicates and unknown names fail with the fix in the message."""
import pytest

from pipeline.errors import RegistryError
from pipeline.registry import Registry


def test_register_get_and_list():
    registry = Registry("widget")

    @registry.register("b")
    def b():
        return "b"

    registry.add("a", 1)
    assert registry.get("b") is b and registry.get("a") == 1
    assert registry.names() == ["a", "b"] and "a" in registry and "c" not in registry


def test_duplicate_and_unknown_names_are_errors():
    registry = Registry("widget")
    registry.add("a", 1)
    with pytest.raises(RegistryError, match="widget 'a' is already registered"):
        registry.add("a", 2)
    assert registry.get("a") == 1
    with pytest.raises(RegistryError, match="unknown widget 'z'; choose one of: a$"):
        registry.get("z")
