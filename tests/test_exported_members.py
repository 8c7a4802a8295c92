"""The public API: `veil.__all__` is sorted, complete and importable."""

from __future__ import annotations

import pkgutil

import veil


def test_all_is_sorted_and_importable() -> None:
    assert veil.__all__ == sorted(veil.__all__)
    for name in veil.__all__:
        assert getattr(veil, name) is not None


def test_all_lists_every_public_name() -> None:
    public = {name for name in vars(veil) if not name.startswith("_")}
    # Subpackages become attributes of `veil` once anything imports them; they are not exported names.
    modules = {module.name for module in pkgutil.iter_modules(veil.__path__)} | {"schemas"}
    assert public - modules == set(veil.__all__)
