"""Uploaded zips of images, extracted safely.

Refused when a member would land outside the folder (zip-slip), is a link, or expands far beyond
its compressed size or the caps (a zip bomb).
"""

import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from django.conf import settings

from generation.importers.base import ImportFileError

MAX_ZIP_MEMBERS = 500_000
MAX_ZIP_TOTAL_BYTES = 16 * 1024**3
MAX_ZIP_RATIO = 200


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
        members = [info for info in bundle.infolist() if not info.is_dir()]
        if len(members) > MAX_ZIP_MEMBERS:
            raise ImportFileError(f"{name}: more than {MAX_ZIP_MEMBERS} files; refused")
        declared = 0
        for info in members:
            destination = (target / info.filename).resolve()
            if (
                info.filename.startswith(("/", "\\"))
                or ".." in PurePosixPath(info.filename.replace("\\", "/")).parts
                or not destination.is_relative_to(target)
            ):
                raise ImportFileError(f"{name}: {info.filename!r} escapes the folder; refused")
            if stat.S_ISLNK(info.external_attr >> 16):
                raise ImportFileError(f"{name}: {info.filename!r} is a link; refused")
            if info.file_size > settings.DISTILLERY_MAX_IMAGE_BYTES:
                raise ImportFileError(
                    f"{name}: {info.filename!r} is above the image cap of "
                    f"{settings.DISTILLERY_MAX_IMAGE_BYTES} bytes; refused"
                )
            if info.file_size > MAX_ZIP_RATIO * max(info.compress_size, 1024):
                raise ImportFileError(
                    f"{name}: {info.filename!r} expands {info.file_size} bytes from "
                    f"{info.compress_size}; refused as a zip bomb"
                )
            declared += info.file_size
        if declared > MAX_ZIP_TOTAL_BYTES:
            raise ImportFileError(f"{name}: expands to more than {MAX_ZIP_TOTAL_BYTES} bytes")
        for info in members:
            destination = (target / info.filename).resolve()
            destination.parent.mkdir(parents=True, exist_ok=True)
            written = 0
            try:
                with bundle.open(info) as member, destination.open("wb") as out:
                    while block := member.read(1024 * 1024):
                        written += len(block)
                        if written > info.file_size:
                            raise ImportFileError(
                                f"{name}: {info.filename!r} is larger than it says; refused"
                            )
                        out.write(block)
            except (zipfile.BadZipFile, zlib.error, EOFError) as error:
                # zipfile reads no more than a member's header says, then finds the CRC wrong.
                raise ImportFileError(
                    f"{name}: {info.filename!r} is damaged or not what its header says "
                    f"({error}); refused"
                ) from None
    entries = list(target.iterdir())
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return target
