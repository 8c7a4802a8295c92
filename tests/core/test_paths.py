"""Paths below a root: one spelling, and no symbolic link below the root followed for reading, writing,
deleting or walking, wherever it sits in the path and whenever it appears."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from veil.core.safety import paths
from veil.core.safety.paths import (
    MAX_DEPTH,
    FileRoot,
    OutputRefusedError,
    PathOutsideRootError,
    file_id,
    path_parts,
)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory beside the root, with a file and an empty folder that must never be touched."""
    folder = tmp_path / "outside"
    (folder / "empty").mkdir(parents=True)
    (folder / "secret.jpg").write_bytes(b"secret")
    return folder


@pytest.fixture
def root(tmp_path: Path, outside: Path) -> FileRoot:
    """A root holding a file, and links out (to a file and a directory) at the top and one level down."""
    top = tmp_path / "root"
    (top / "in" / "deep").mkdir(parents=True)
    (top / "in" / "photo.jpg").write_bytes(b"photo")
    (top / "escape").symlink_to(outside, target_is_directory=True)
    (top / "in" / "escape").symlink_to(outside, target_is_directory=True)
    (top / "in" / "secret.jpg").symlink_to(outside / "secret.jpg")
    (top / "in" / "inside.jpg").symlink_to(top / "in" / "photo.jpg")
    return FileRoot(top)


def untouched(outside: Path) -> None:
    assert sorted(p.name for p in outside.iterdir()) == ["empty", "secret.jpg"]
    assert (outside / "secret.jpg").read_bytes() == b"secret"


@pytest.mark.parametrize(
    ("relative", "parts"),
    [("a/b", ("a", "b")), ("./a//b/", ("a", "b")), ("a/./b", ("a", "b")), (".", ()), ("a\\b", ("a\\b",))],
)
def test_a_path_has_one_spelling(relative: str, parts: tuple[str, ...]) -> None:
    assert path_parts(relative) == parts


@pytest.mark.parametrize(
    "relative", ["/etc/passwd", "//x", "../x", "a/../../b", "a/..", "x\x00.jpg", "\udc00"]
)
def test_paths_out_of_the_root_or_unusable_are_refused(relative: str) -> None:
    with pytest.raises(PathOutsideRootError):
        path_parts(relative)


def test_a_path_deeper_than_the_limit_is_refused() -> None:
    assert len(path_parts("/".join(["a"] * MAX_DEPTH))) == MAX_DEPTH
    with pytest.raises(PathOutsideRootError, match=f"at most {MAX_DEPTH}"):
        path_parts("/".join(["a"] * (MAX_DEPTH + 1)))


def test_the_walk_stops_at_the_depth_limit_and_says_so(root: FileRoot) -> None:
    """GIVEN a tree far deeper than Python recurses (made on disk, beyond what a path may name)
    WHEN it is walked, as a directory task does
    THEN the walk lists the directory at the limit as skipped, instead of failing with a RecursionError."""
    deep, levels = root.path / "in" / "deep", 1500
    for level in range(1, levels + 1):
        os.mkdir(deep / "/".join(["a"] * level))
    try:
        entries = {e.relative: e.skipped for e in root.walk("in") if e.relative.startswith("deep")}
    finally:  # bottom up: pytest's clean-up recurses, and would fail on this tree
        for level in range(levels, 0, -1):
            os.rmdir(deep / "/".join(["a"] * level))

    limit = "/".join(["deep"] + ["a"] * (MAX_DEPTH - 1))
    assert entries == {limit: f"is more than {MAX_DEPTH} directories deep; not entered"}


@pytest.mark.parametrize("relative", ["escape/secret.jpg", "in/escape/secret.jpg", "in/secret.jpg"])
def test_reading_through_a_link_is_refused(root: FileRoot, relative: str) -> None:
    with pytest.raises(PathOutsideRootError, match="symbolic link"), root.reading(relative):
        pass


def test_a_link_is_not_followed_even_when_it_stays_inside(root: FileRoot) -> None:
    with (
        pytest.raises(PathOutsideRootError, match=r"'in/inside\.jpg' is a symbolic link"),
        root.reading("in/inside.jpg"),
    ):
        pass


def test_reading_gives_the_file_opened_even_if_a_link_replaces_it_meanwhile(
    root: FileRoot, outside: Path
) -> None:
    """GIVEN a file opened for reading
    WHEN its path is replaced by a link out of the root before the decoder opens the name it was given
    THEN the decoder still reads the file that was opened."""
    photo = root.path / "in" / "photo.jpg"
    with root.reading("in/photo.jpg") as (name, info):
        photo.unlink()
        photo.symlink_to(outside / "secret.jpg")
        assert name.read_bytes() == b"photo"
        assert name.suffix == ".jpg"
        assert info.st_size == len(b"photo")


def test_reading_a_fifo_is_refused_without_waiting_for_a_writer(root: FileRoot) -> None:
    os.mkfifo(root.path / "in" / "pipe.jpg")

    with pytest.raises(OSError, match="not a regular file"), root.reading("in/pipe.jpg"):
        pass


@pytest.mark.parametrize("relative", ["escape/out.jpg", "in/escape/out.jpg", "in/escape/new/out.jpg"])
def test_writing_through_a_linked_directory_is_refused(
    root: FileRoot, outside: Path, tmp_path: Path, relative: str
) -> None:
    staged = tmp_path / "staged.jpg"
    staged.write_bytes(b"blurred")

    with pytest.raises(PathOutsideRootError, match="symbolic link"):
        root.publish(staged, relative, replace=True, tag="task_1")

    untouched(outside)


def test_a_link_at_the_output_name_is_replaced_not_written_through(
    root: FileRoot, outside: Path, tmp_path: Path
) -> None:
    staged = tmp_path / "staged.jpg"
    staged.write_bytes(b"blurred")

    root.publish(staged, "in/secret.jpg", replace=True, tag="task_1")

    assert not (root.path / "in" / "secret.jpg").is_symlink()
    assert (root.path / "in" / "secret.jpg").read_bytes() == b"blurred"
    untouched(outside)


@pytest.mark.parametrize("cross_device", [False, True])
def test_publishing_makes_the_directories_and_leaves_nothing_behind(
    root: FileRoot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cross_device: bool
) -> None:
    if cross_device:  # staging on another file system: copied beside the target, then renamed
        monkeypatch.setattr(paths.os, "rename", _fails_across_devices)
    staged = tmp_path / "staged.jpg"
    staged.write_bytes(b"blurred")
    staged.chmod(0o640)

    root.publish(staged, "out/a/b.jpg", replace=False, tag="task_1")

    written = root.path / "out" / "a" / "b.jpg"
    assert written.read_bytes() == b"blurred"
    assert written.stat().st_mode & 0o777 == 0o640
    assert os.listdir(written.parent) == ["b.jpg"]
    assert not staged.exists()


def _fails_across_devices(*args: object, **kwargs: object) -> None:
    raise OSError(errno.EXDEV, "Invalid cross-device link")


def test_an_output_never_replaces_an_input_and_replaces_a_file_only_when_asked(
    root: FileRoot, tmp_path: Path
) -> None:
    photo = root.path / "in" / "photo.jpg"
    os.link(photo, root.path / "in" / "hard.jpg")
    (root.path / "in" / "other.jpg").write_bytes(b"other")
    staged = tmp_path / "staged.jpg"
    staged.write_bytes(b"blurred")
    inputs = {file_id(photo.stat())}

    for relative in ("in/photo.jpg", "./in//photo.jpg", "in/hard.jpg"):
        with pytest.raises(OutputRefusedError, match="is an input"):
            root.publish(staged, relative, replace=True, inputs=inputs, tag="task_1")
    with pytest.raises(OutputRefusedError, match="already exists"):
        root.publish(staged, "in/other.jpg", replace=False, inputs=inputs, tag="task_1")
    with pytest.raises(OutputRefusedError, match="is a directory"):
        root.publish(staged, "in/deep", replace=True, inputs=inputs, tag="task_1")

    assert photo.read_bytes() == b"photo"
    root.publish(staged, "in/other.jpg", replace=True, inputs=inputs, tag="task_1")
    assert (root.path / "in" / "other.jpg").read_bytes() == b"blurred"


def test_deleting_removes_a_link_never_its_target(root: FileRoot, outside: Path) -> None:
    root.delete("in/secret.jpg")
    root.delete("escape")

    assert not (root.path / "in" / "secret.jpg").is_symlink()
    assert not (root.path / "escape").is_symlink()
    untouched(outside)


@pytest.mark.parametrize("relative", ["escape/secret.jpg", "in/escape/secret.jpg", "in/escape/empty"])
def test_deleting_through_a_linked_directory_is_refused(root: FileRoot, outside: Path, relative: str) -> None:
    with pytest.raises(PathOutsideRootError):
        root.delete(relative)

    untouched(outside)


def test_deleting_a_directory_removes_what_is_below_but_not_what_links_point_at(
    root: FileRoot, outside: Path
) -> None:
    root.delete("in")
    root.delete("missing/too")

    assert sorted(p.name for p in root.path.iterdir()) == ["escape"]
    untouched(outside)


def test_pruning_removes_empty_directories_and_never_enters_links(root: FileRoot, outside: Path) -> None:
    (root.path / "in" / "deep" / "deeper").mkdir()
    (root.path / "in" / "photo.jpg").unlink()
    for name in ("secret.jpg", "inside.jpg"):
        (root.path / "in" / name).unlink()

    root.prune("in")

    assert sorted(p.name for p in (root.path / "in").iterdir()) == ["escape"]
    untouched(outside)


def test_the_walk_lists_links_and_special_files_as_skipped_and_enters_real_directories(
    root: FileRoot,
) -> None:
    (root.path / "in" / "deep" / "b.jpg").write_bytes(b"b")
    (root.path / "in" / ".hidden.jpg").write_bytes(b"h")
    os.mkfifo(root.path / "in" / "pipe.jpg")

    entries = {entry.relative: entry.skipped for entry in root.walk("in")}

    assert entries == {
        "deep/b.jpg": None,
        "escape": "is a symbolic link; links below the file root are not followed",
        "inside.jpg": "is a symbolic link; links below the file root are not followed",
        "photo.jpg": None,
        "pipe.jpg": "is not a regular file",
        "secret.jpg": "is a symbolic link; links below the file root are not followed",
    }


def test_walking_a_linked_directory_is_refused(root: FileRoot) -> None:
    with pytest.raises(PathOutsideRootError):
        list(root.walk("in/escape"))


def test_a_default_root_is_made_when_first_needed(tmp_path: Path) -> None:
    made = FileRoot(tmp_path / "files" / "key_a", create=True)
    set_by_operator = FileRoot(tmp_path / "unmounted")

    assert made.lstat("x.jpg") is None
    assert (tmp_path / "files" / "key_a").is_dir()
    assert set_by_operator.lstat("x.jpg") is None
    assert not (tmp_path / "unmounted").exists()
