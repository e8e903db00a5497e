"""Uploaded zips of images, extracted safely.

Everything is checked from the zip's central directory before a byte is written, and refused with
a message: a member that would land outside the folder (zip-slip) or is a link, a name that is
both a file and a folder, a member above the image cap, and an archive that would expand beyond
`DISTILLERY_ZIP_MAX_BYTES` in all or more than `DISTILLERY_ZIP_MAX_RATIO` times its compressed
size in all (a zip bomb, however many small members it is split into). While extracting, no
member is written past the size its header declares.
"""

import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from django.conf import settings

from generation.importers.base import ImportFileError

# An archive may expand this much whatever its ratio (a few flat BMPs compress a thousandfold).
RATIO_FREE_BYTES = 1024 * 1024


def images_zip_extract(*, archive: Path, target: Path, name: str = "images.zip") -> Path:
    """Extract a zip of images into `target` and return the folder to read images from.

    Every member is checked before anything is written, and the bytes actually written are
    counted (a zip's declared sizes can lie). A zip whose files sit in one top folder yields that
    folder, so `images/80.jpg` is found as `80.jpg`.
    """
    target = target.resolve()
    try:
        bundle = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError):
        raise ImportFileError(f"{name}: not a zip file") from None
    with bundle:
        infos = bundle.infolist()
        members = [info for info in infos if not info.is_dir()]
        _check_sizes(members, archive_bytes=archive.stat().st_size, name=name)
        _check_names(infos, members, target=target, name=name)
        for info in members:
            _extract(bundle, info, target=target, name=name)
    entries = list(target.iterdir()) if target.is_dir() else []
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return target


def _check_sizes(members: list[zipfile.ZipInfo], *, archive_bytes: int, name: str) -> None:
    """Refuse too many members, a member above the image cap, and an archive expanding too far.

    The compressed size is what the members declare, but never more than the archive itself:
    members that lie about it, or share their data (overlapping members), gain nothing.
    """
    most_files = settings.DISTILLERY_ZIP_MAX_FILES
    if len(members) > most_files:
        raise ImportFileError(
            f"refused: {name} holds {len(members)} files, above DISTILLERY_ZIP_MAX_FILES "
            f"({most_files})"
        )
    for info in members:
        if info.file_size > settings.DISTILLERY_MAX_IMAGE_BYTES:
            raise ImportFileError(
                f"{name}: {info.filename!r} is above the image cap of "
                f"{settings.DISTILLERY_MAX_IMAGE_BYTES} bytes; refused"
            )
    expanded = sum(info.file_size for info in members)
    compressed = min(sum(info.compress_size for info in members), archive_bytes)
    most_bytes, ratio = settings.DISTILLERY_ZIP_MAX_BYTES, settings.DISTILLERY_ZIP_MAX_RATIO
    if expanded > most_bytes:
        raise ImportFileError(
            f"refused: {name} would expand to {expanded} bytes, above DISTILLERY_ZIP_MAX_BYTES "
            f"({most_bytes})"
        )
    if expanded > max(ratio * compressed, RATIO_FREE_BYTES):
        raise ImportFileError(
            f"refused: {name} would expand to {expanded} bytes from {compressed} compressed "
            f"({expanded // max(compressed, 1)}×, above DISTILLERY_ZIP_MAX_RATIO of {ratio}×): "
            "a zip bomb"
        )


def _check_names(
    infos: list[zipfile.ZipInfo], members: list[zipfile.ZipInfo], *, target: Path, name: str
) -> None:
    """Refuse members leaving the folder, links, and a name that is both a file and a folder."""
    folders: set[PurePosixPath] = set()
    for info in infos:
        path = PurePosixPath(info.filename)
        folders.update(path.parents)
        if info.is_dir():
            folders.add(path)
    for info in members:
        try:
            destination = (target / info.filename).resolve()
        except (OSError, ValueError) as error:  # a name too long for the file system
            raise ImportFileError(
                f"{name}: {info.filename[:200]!r} is no usable file name ({error}); refused"
            ) from None
        if (
            info.filename.startswith(("/", "\\"))
            or ".." in PurePosixPath(info.filename.replace("\\", "/")).parts
            or not destination.is_relative_to(target)
        ):
            raise ImportFileError(f"{name}: {info.filename!r} escapes the folder; refused")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise ImportFileError(f"{name}: {info.filename!r} is a link; refused")
        if destination == target or PurePosixPath(info.filename) in folders:
            raise ImportFileError(
                f"{name}: {str(PurePosixPath(info.filename))!r} is both a file and a folder; "
                "refused"
            )


def _extract(bundle: zipfile.ZipFile, info: zipfile.ZipInfo, *, target: Path, name: str) -> None:
    """Write one checked member, never more bytes than its header declares."""
    destination = (target / info.filename).resolve()
    written = 0
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        with bundle.open(info) as member, destination.open("wb") as out:
            while block := member.read(min(1024 * 1024, info.file_size - written + 1)):
                written += len(block)
                if written > info.file_size:
                    raise ImportFileError(
                        f"{name}: {info.filename!r} is larger than it says; refused"
                    )
                out.write(block)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as error:
        # zipfile reads no more than a member's header says, then finds the CRC wrong; an
        # encrypted member or an unknown compression method is refused the same way.
        raise ImportFileError(
            f"{name}: {info.filename!r} is damaged or not what its header says ({error}); refused"
        ) from None
    except OSError as error:
        raise ImportFileError(
            f"{name}: {info.filename!r} cannot be extracted ({error.strerror or error})"
        ) from None
