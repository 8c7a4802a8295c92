"""Client-given paths resolved under a root, never outside it."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

__all__ = ["PathOutsideRootError", "resolve_under"]


class PathOutsideRootError(ValueError):
    """A path that is absolute, climbs out with `..`, or leads out through a symlink."""


def resolve_under(root: Path, relative: str) -> Path:
    """`root / relative`, with every symlink resolved, refused unless it stays inside `root`.

    Raises:
        PathOutsideRootError: with a message naming the path and why.
    """
    if not relative or "\x00" in relative:
        raise PathOutsideRootError(f"{relative!r} is not a usable path")
    posix = PurePosixPath(relative)
    if posix.is_absolute() or Path(relative).is_absolute():
        raise PathOutsideRootError(f"{relative!r} is absolute; give a path relative to the file root")
    if ".." in posix.parts:
        raise PathOutsideRootError(f"{relative!r} climbs out of the file root with '..'")
    root = root.resolve()
    resolved = (root / posix).resolve()
    if resolved != root and root not in resolved.parents:
        raise PathOutsideRootError(f"{relative!r} leads outside the file root through a symbolic link")
    return resolved
