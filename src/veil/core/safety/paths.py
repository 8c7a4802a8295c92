"""Client-given paths below a root, reached one component at a time and never through a symbolic link.

The root itself is trusted: an operator chose it, and it may be, or lie behind, a link. Below it, every
operation starts from an open descriptor of the root and opens each directory with O_NOFOLLOW, so a link
anywhere in a path, even one swapped in while the operation runs, makes it fail instead of leading out:

- reading opens the file itself and gives decoders in this process a private name for that open file;
- writing renames a finished file from private staging into the opened parent directory, so a link at
  the final name is replaced, never written through;
- deleting unlinks in the opened parent: a link is removed, never what it points at;
- walking a tree enters real directories only, and lists every link and special file with why it is
  skipped.

A path has one spelling (`path_parts`): `./a//b/` and `a/b` are the same path; `..` and absolute paths are
refused, and so are paths more than `MAX_DEPTH` directories deep; a walk does not enter deeper either, so
walking and deleting, which recurse, stay bounded whatever tree a client builds.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

__all__ = [
    "MAX_DEPTH",
    "NOT_FOLLOWED",
    "Entry",
    "FileRoot",
    "OutputRefusedError",
    "PathOutsideRootError",
    "check_replaceable",
    "file_id",
    "path_parts",
]

_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a FIFO swapped in for a file must not hang the worker in open().
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# Linux names every open file of the process here; opening such a name opens that very file again.
_OPEN_FILES = Path("/proc/self/fd")
NOT_FOLLOWED = "links below the file root are not followed"
MAX_DEPTH = 64
"""The most components a path below a root has, and how many directories deep a walk goes."""


class PathOutsideRootError(ValueError):
    """A path that is absolute, climbs out with `..`, or goes through a symbolic link."""


class OutputRefusedError(ValueError):
    """An output that would replace a directory, an input of the same task, or a file not to replace."""


def path_parts(relative: str) -> tuple[str, ...]:
    """The components of a path relative to a root, in one spelling: `./a//b/` gives ("a", "b"), and "."
    gives () (the root itself).

    Raises:
        PathOutsideRootError: the path is absolute, climbs out with `..`, or cannot name a file.
    """
    try:
        relative.encode()
    except UnicodeEncodeError:
        raise PathOutsideRootError(f"{relative!r} is not a usable path") from None
    if "\x00" in relative:
        raise PathOutsideRootError(f"{relative!r} is not a usable path")
    posix = PurePosixPath(relative)
    if posix.is_absolute():
        raise PathOutsideRootError(f"{relative!r} is absolute; give a path relative to the file root")
    if ".." in posix.parts:
        raise PathOutsideRootError(f"{relative!r} climbs out of the file root with '..'")
    if len(posix.parts) > MAX_DEPTH:
        raise PathOutsideRootError(f"has {len(posix.parts)} components; at most {MAX_DEPTH} are allowed")
    return posix.parts


def file_id(info: os.stat_result) -> tuple[int, int]:
    """What makes a file the same file under every name (hard links included): device and inode."""
    return info.st_dev, info.st_ino


@dataclass(frozen=True)
class Entry:
    """A file found below a walked directory: its path relative to that directory, its own status (a link's,
    not its target's), and why it is skipped; `skipped` is None for a regular file."""

    relative: str
    info: os.stat_result
    skipped: str | None = None


@dataclass(frozen=True)
class FileRoot:
    """A directory that client paths are relative to; `create` makes it, with its parents, when missing."""

    path: Path
    create: bool = False

    @contextmanager
    def directory(self, parts: Sequence[str], *, create: bool = False) -> Iterator[int]:
        """An open descriptor of the directory `parts` below the root; `create` makes the missing ones.

        Raises:
            PathOutsideRootError: a component is a symbolic link.
            FileNotFoundError: a component is missing (and not `create`).
            NotADirectoryError: a component is a file.
        """
        if self.create:
            self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for index, part in enumerate(parts):
                child = _open_directory(fd, part, "/".join(parts[: index + 1]), create=create)
                os.close(fd)
                fd = child
            yield fd
        finally:
            os.close(fd)

    def lstat(self, relative: str) -> os.stat_result | None:
        """What is at `relative` (a link itself, not what it points at); None when nothing is.

        Raises:
            PathOutsideRootError: the path is refused, or a directory on the way is a symbolic link.
            NotADirectoryError: a directory on the way is a file.
        """
        parts = path_parts(relative)
        try:
            with self.directory(parts[:-1]) as parent:
                return _lstat(parent, parts[-1]) if parts else os.fstat(parent)
        except FileNotFoundError:
            return None

    @contextmanager
    def reading(self, relative: str) -> Iterator[tuple[Path, os.stat_result]]:
        """A name for the regular file `relative`, opened now, and its status. Decoders in this process
        that open the name read that very file, whatever is renamed or linked in its place meanwhile.

        Raises:
            PathOutsideRootError: the path is refused, or it is or goes through a symbolic link.
            FileNotFoundError: nothing is there. OSError: it is a directory or another non-regular file.
        """
        parts = path_parts(relative)
        with self.directory(parts[:-1]) as parent:
            fd = _open_file(parent, parts, relative)
        try:
            info = os.fstat(fd)
            _require_regular(info, relative)
            with tempfile.TemporaryDirectory(prefix="veil-read-") as private:
                name = Path(private) / parts[-1]
                name.symlink_to(_OPEN_FILES / str(fd))
                yield name, info
        finally:
            os.close(fd)

    def publish(
        self,
        staged: Path,
        relative: str,
        *,
        replace: bool,
        inputs: Collection[tuple[int, int]] = (),
        tag: str,
    ) -> None:
        """Moves the finished file `staged` (kept where no client reaches) to `relative`, making the missing
        directories on the way. Across file systems it is copied to a hidden `.NAME.veil-partial-TAG` beside
        the target first, so the target appears only when complete.

        Raises:
            PathOutsideRootError: the path is refused, or a directory on the way is a symbolic link.
            OutputRefusedError: a directory is there, or an input (`file_id`s), or a file and not `replace`.
        """
        parts = path_parts(relative)
        if not parts:
            raise OutputRefusedError("is the file root; give a file path")
        name = parts[-1]
        with self.directory(parts[:-1], create=True) as parent:
            check_replaceable(_lstat(parent, name), replace=replace, inputs=inputs)
            try:
                os.rename(staged, name, dst_dir_fd=parent)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                _copy_in(staged, parent, name, tag)
                staged.unlink()

    def make_directory(self, relative: str) -> None:
        """Makes the directory `relative` and the missing ones above it.

        Raises:
            PathOutsideRootError: the path is refused, or a directory on the way is a symbolic link.
        """
        with self.directory(path_parts(relative), create=True):
            pass

    def delete(self, relative: str) -> None:
        """Deletes `relative`, a directory with everything below it; a link goes, never what it points at.
        Nothing there is fine.

        Raises:
            PathOutsideRootError: the path is refused, or a directory on the way is a symbolic link.
        """
        parts = path_parts(relative)
        if not parts:
            raise PathOutsideRootError("the file root itself is not deleted")
        with suppress(FileNotFoundError), self.directory(parts[:-1]) as parent:
            try:
                os.unlink(parts[-1], dir_fd=parent)
            except IsADirectoryError:
                shutil.rmtree(parts[-1], dir_fd=parent)  # works on descriptors; follows no link

    def prune(self, relative: str) -> None:
        """Deletes the empty directories at and below `relative`, deepest first; the others stay.

        Raises:
            PathOutsideRootError: the path is refused, or a directory on the way is a symbolic link.
        """
        parts = path_parts(relative)
        with suppress(FileNotFoundError), self.directory(parts) as top:
            for _, dirs, _, fd in os.fwalk(".", dir_fd=top, topdown=False, follow_symlinks=False):
                for name in dirs:
                    with suppress(OSError):  # not empty, or a link to a directory
                        os.rmdir(name, dir_fd=fd)
        if parts:
            with suppress(FileNotFoundError), self.directory(parts[:-1]) as parent, suppress(OSError):
                os.rmdir(parts[-1], dir_fd=parent)

    def walk(self, relative: str) -> Iterator[Entry]:
        """Every file below the directory `relative`, depth first in name order, hidden names (".x") left
        out: regular files, and links, special files and directories deeper than `MAX_DEPTH` with why they
        are skipped. Only real directories are entered.

        Raises:
            PathOutsideRootError: the path is refused, or it goes through a symbolic link.
            FileNotFoundError, NotADirectoryError: no directory is there.
        """
        with self.directory(path_parts(relative)) as top:
            yield from _entries(top, "", depth=1)


def _open_directory(fd: int, name: str, shown: str, *, create: bool) -> int:
    try:
        return os.open(name, _DIRECTORY, dir_fd=fd)
    except FileNotFoundError:
        if not create:
            raise
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and _is_link(_lstat(fd, name)):
            raise PathOutsideRootError(f"{shown!r} is a symbolic link; {NOT_FOLLOWED}") from None
        raise
    with suppress(FileExistsError):  # made by someone else meanwhile
        os.mkdir(name, dir_fd=fd)
    return _open_directory(fd, name, shown, create=False)


def _open_file(parent: int, parts: Sequence[str], relative: str) -> int:
    if not parts:
        raise IsADirectoryError(errno.EISDIR, "the file root is a directory", relative)
    found = _lstat(parent, parts[-1])
    if found is None:
        raise FileNotFoundError(errno.ENOENT, "no such file", relative)
    if _is_link(found):
        raise PathOutsideRootError(f"{relative!r} is a symbolic link; {NOT_FOLLOWED}")
    _require_regular(found, relative)  # before opening: opening a device may do something
    try:
        return os.open(parts[-1], _FILE, dir_fd=parent)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # replaced by a link since
            raise PathOutsideRootError(f"{relative!r} is a symbolic link; {NOT_FOLLOWED}") from None
        raise


def _require_regular(info: os.stat_result, relative: str) -> None:
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(errno.EISDIR, "is a directory", relative)
    if not stat.S_ISREG(info.st_mode):
        raise OSError(errno.EINVAL, "not a regular file", relative)


def _lstat(fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _is_link(info: os.stat_result | None) -> bool:
    return info is not None and stat.S_ISLNK(info.st_mode)


def check_replaceable(
    existing: os.stat_result | None, *, replace: bool, inputs: Collection[tuple[int, int]]
) -> None:
    """Refuses to put an output where `existing` is: a directory, one of the `inputs` (`file_id`s), or any
    file unless `replace`; nothing there is fine.

    Raises:
        OutputRefusedError: saying why, for a person.
    """
    if existing is None:
        return
    if stat.S_ISDIR(existing.st_mode):
        raise OutputRefusedError("is a directory; give a file path")
    if file_id(existing) in inputs:
        raise OutputRefusedError("is an input of this task (the same file); give another path")
    if not replace:
        raise OutputRefusedError('already exists; set "overwrite": true to replace it')


def _copy_in(staged: Path, parent: int, name: str, tag: str) -> None:
    partial = f".{name}.veil-partial-{tag}"
    with suppress(FileNotFoundError):  # what a killed attempt left
        os.unlink(partial, dir_fd=parent)
    # O_EXCL|O_NOFOLLOW: a link planted at the partial name since the unlink fails the copy, never
    # redirects it.
    fd = os.open(partial, _NEW_FILE, 0o600, dir_fd=parent)
    try:
        os.fchmod(fd, stat.S_IMODE(staged.stat().st_mode))
        with os.fdopen(fd, "wb") as target, staged.open("rb") as source:
            shutil.copyfileobj(source, target, 1024 * 1024)
        os.replace(partial, name, src_dir_fd=parent, dst_dir_fd=parent)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(partial, dir_fd=parent)
        raise


def _entries(fd: int, prefix: str, *, depth: int) -> Iterator[Entry]:
    with os.scandir(fd) as listing:
        found = sorted((entry for entry in listing if not entry.name.startswith(".")), key=lambda e: e.name)
    for entry in found:
        relative = f"{prefix}{entry.name}"
        info = entry.stat(follow_symlinks=False)
        if stat.S_ISDIR(info.st_mode) and depth >= MAX_DEPTH:
            yield Entry(relative, info, f"is more than {MAX_DEPTH} directories deep; not entered")
        elif stat.S_ISDIR(info.st_mode):
            yield from _subdirectory(fd, entry.name, relative, info, depth=depth + 1)
        elif stat.S_ISLNK(info.st_mode):
            yield Entry(relative, info, f"is a symbolic link; {NOT_FOLLOWED}")
        elif not stat.S_ISREG(info.st_mode):
            yield Entry(relative, info, "is not a regular file")
        else:
            yield Entry(relative, info)


def _subdirectory(fd: int, name: str, relative: str, info: os.stat_result, *, depth: int) -> Iterator[Entry]:
    try:
        child = _open_directory(fd, name, relative, create=False)
    except (PathOutsideRootError, OSError) as exc:  # replaced or removed since it was listed
        yield Entry(relative, info, str(exc))
        return
    try:
        yield from _entries(child, f"{relative}/", depth=depth)
    finally:
        os.close(child)
