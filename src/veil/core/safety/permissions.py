"""Folders and files only their owner may open: the database, the embedded broker's file, stored media.

They hold every key's uploads, outputs and callback secrets, so other accounts on the machine must not read
them. Modes are set after creation, not only asked for, so a permissive umask (0o000, 0o002) cannot widen
them. Folders and files that already exist keep the mode an operator gave them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

__all__ = ["DIR_MODE", "FILE_MODE", "create_file", "make_dirs", "open_new", "restrict"]

DIR_MODE = 0o700
FILE_MODE = 0o600


def make_dirs(path: Path) -> None:
    """Creates `path` and its missing parents, each 0700."""
    missing: list[Path] = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue  # another process made it at the same moment, with this same code
        os.chmod(folder, DIR_MODE)


def create_file(path: Path) -> None:
    """Creates `path` empty and 0600, unless it exists (SQLite then opens it, and gives the files it adds
    beside it, -wal and -shm, the same mode)."""
    make_dirs(path.parent)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return
    try:
        os.fchmod(descriptor, FILE_MODE)
    finally:
        os.close(descriptor)


def open_new(path: Path) -> BinaryIO:
    """`path` emptied (or created) and opened for writing, 0600."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    os.fchmod(descriptor, FILE_MODE)
    return os.fdopen(descriptor, "wb")


def restrict(path: Path) -> None:
    """Makes a file that something else wrote (an encoder, a copy) 0600."""
    os.chmod(path, FILE_MODE)
