"""Zip files in and out of the annotation formats, read as an untrusted upload.

`Bundle` opens what a person uploads: a zip, or one bare annotation file (an XML or JSON file as CVAT also
takes them). Before anything is read it refuses member names that could escape a folder (absolute,
"..", drive letters, backslashes) and zip bombs: more than `max_total_bytes` uncompressed in all, or a
member that expands more than `max_ratio` times its compressed size. XML is parsed with defusedxml, which
refuses DTDs, entity declarations and external references.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import IO
from xml.etree.ElementTree import Element

import defusedxml
import defusedxml.ElementTree

from veil.engine.errors import AnnotationFileError, OutputError, UnsafeArchiveError

__all__ = ["Bundle", "DatasetWriter", "check_member_name", "parse_xml"]

MAX_TOTAL_BYTES = 2 * 1024**3
MAX_RATIO = 200
# Tiny members may expand far more than that (a run of spaces), yet cannot add up to a bomb.
_RATIO_FLOOR_BYTES = 1024**2


def check_member_name(name: str, where: str) -> str:
    """Returns `name` if it is a relative POSIX path that stays inside its folder.

    Raises:
        UnsafeArchiveError: the name is absolute, has a ".." part, a drive letter or a backslash.
    """
    path = PurePosixPath(name)
    if (
        not name
        or "\\" in name
        or path.is_absolute()
        or ".." in path.parts
        or (path.parts and ":" in path.parts[0])
    ):
        raise UnsafeArchiveError(f"{where}: the member {name!r} would be written outside its folder")
    return name


class Bundle:
    """The members of an uploaded zip, or a single file as a bundle of one member under its own name.

    Raises:
        AnnotationFileError: the file cannot be read.
        UnsafeArchiveError: a member name escapes its folder, or the zip expands too far.
    """

    def __init__(
        self, source: Path, max_total_bytes: int = MAX_TOTAL_BYTES, max_ratio: int = MAX_RATIO
    ) -> None:
        self.name = source.name
        self._zip: zipfile.ZipFile | None = None
        try:
            if zipfile.is_zipfile(source):
                self._zip = zipfile.ZipFile(source)
                self._members = self._checked(self._zip, max_total_bytes, max_ratio)
            else:
                self._members = {source.name: source.stat().st_size}
                self._single = source
        except (OSError, zipfile.BadZipFile) as exc:
            raise AnnotationFileError(f"{self.name}: cannot read the file ({exc})") from exc

    def __enter__(self) -> Bundle:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._zip is not None:
            self._zip.close()

    def names(self) -> list[str]:
        """Member names (files only), as stored."""
        return list(self._members)

    def find(self, suffix: str) -> list[str]:
        """Members whose name ends with `suffix` (case ignored), e.g. "annotations.xml" or ".txt"."""
        return sorted(n for n in self._members if n.casefold().endswith(suffix.casefold()))

    def read(self, name: str) -> bytes:
        try:
            if self._zip is None:
                return self._single.read_bytes()
            return self._zip.read(name)
        except (OSError, zipfile.BadZipFile, KeyError) as exc:
            raise AnnotationFileError(f"{self.name}: cannot read {name} ({exc})") from exc

    def read_text(self, name: str) -> str:
        try:
            return self.read(name).decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise AnnotationFileError(f"{self.name}: {name} is not UTF-8 text") from exc

    def _checked(self, archive: zipfile.ZipFile, max_total: int, max_ratio: int) -> dict[str, int]:
        members: dict[str, int] = {}
        total = 0
        for info in archive.infolist():
            check_member_name(info.filename, self.name)
            if info.is_dir():
                continue
            total += info.file_size
            expands = info.file_size > _RATIO_FLOOR_BYTES and info.file_size > max_ratio * info.compress_size
            if expands or total > max_total:
                raise UnsafeArchiveError(
                    f"{self.name}: the zip expands too far ({info.filename}: {info.compress_size} bytes "
                    f"stored, {info.file_size} unpacked; at most {max_ratio} times, {max_total} bytes in all)"
                )
            members[info.filename] = info.file_size
        return members


def parse_xml(data: bytes, where: str) -> Element:
    """The root element of an XML document read with defusedxml.

    Raises:
        UnsafeArchiveError: a DTD, an entity declaration or an external reference.
        AnnotationFileError: not well-formed XML.
    """
    try:
        return defusedxml.ElementTree.fromstring(data, forbid_dtd=True)
    except defusedxml.DefusedXmlException as exc:
        raise UnsafeArchiveError(f"{where}: XML with a DTD or entities is refused ({exc})") from exc
    except defusedxml.ElementTree.ParseError as exc:
        raise AnnotationFileError(f"{where}: not well-formed XML ({exc})") from exc


class DatasetWriter:
    """A zip being written; members are streamed in, so a large annotation file is never held whole.

    Raises:
        OutputError: the zip cannot be written.
    """

    def __init__(self, target: Path) -> None:
        self.target = target
        try:
            self._zip = zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, compresslevel=6)
        except OSError as exc:
            raise OutputError(f"cannot write {target.name}: {exc.strerror or exc}") from exc

    def write_bytes(self, name: str, data: bytes) -> None:
        # JPEG does not deflate; storing it saves the time of trying.
        compress = zipfile.ZIP_STORED if name.endswith((".jpg", ".jpeg", ".png")) else zipfile.ZIP_DEFLATED
        self._guard(lambda: self._zip.writestr(check_member_name(name, self.target.name), data, compress))

    def open_text(self, name: str) -> TextMember:
        """A text member to write to, UTF-8, closed by leaving the `with` block."""
        return TextMember(self._zip.open(check_member_name(name, self.target.name), "w", force_zip64=True))

    def close(self) -> None:
        self._guard(self._zip.close)

    def _guard(self, action: Callable[[], object]) -> None:
        try:
            action()
        except OSError as exc:
            raise OutputError(f"cannot write {self.target.name}: {exc.strerror or exc}") from exc


class TextMember:
    """A zip member open for text; the wrapper's buffer makes many small writes cost little."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._text = io.TextIOWrapper(raw, encoding="utf-8", newline="\n")

    def __enter__(self) -> TextMember:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._text.close()

    def write(self, text: str) -> None:
        self._text.write(text)

    def lines(self, lines: Iterator[str]) -> None:
        for line in lines:
            self._text.write(line)
