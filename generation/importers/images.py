"""The images a posts file names: where they may be, what they may be, what they are stored as.

Images are read from the folder given with the file (`--images`, or an uploaded zip extracted by
`generation.importers.archives`). A name that leaves the folder, a file over the size or pixel
caps, one Pillow cannot read, or a name no file can have (a NUL, too long) stops the import; an
image that is not there is a warning.
"""

from collections.abc import Callable
from pathlib import Path, PurePosixPath

from django.conf import settings
from PIL import Image, UnidentifiedImageError

from generation.importers.base import PostRecord, Source

IMAGE_SUFFIXES = {"JPEG": ".jpg", "MPO": ".jpg", "TIFF": ".tif"}


class ImagesFolder:
    """Checks the image each record names against the folder (or its absence)."""

    def __init__(self, root: Path | None, *, warn: Callable[[str], None]) -> None:
        self.root = root.resolve() if root else None
        self.warn = warn
        self.unresolved = 0  # records naming an image when no folder was given
        self.missing = 0  # records naming an image the folder does not have

    def check(self, source: Source, record: PostRecord) -> Path | None:
        """The record's image file, checked; None when it names none or it is not there."""
        if not record.image:
            return None
        if self.root is None:
            self.unresolved += 1
            return None
        if "\0" in record.image:
            raise source.error(record.line, f"image name {record.image!r} holds a NUL character")
        name = record.image.replace("\\", "/")
        try:
            path = (self.root / name).resolve()
            if PurePosixPath(name).is_absolute() or not path.is_relative_to(self.root):
                raise source.error(
                    record.line, f"image path {record.image!r} escapes the images folder"
                )
            if not path.is_file():
                self.missing += 1
                self.warn(
                    f"{source.where(record.line)}: image {record.image!r} not found; "
                    "post imported without it"
                )
                return None
            size = path.stat().st_size
        except OSError as error:  # a name too long for the file system
            raise source.error(
                record.line,
                f"image name {record.image[:200]!r} is no usable file name "
                f"({error.strerror or error})",
            ) from None
        if size > settings.DISTILLERY_MAX_IMAGE_BYTES:
            raise source.error(
                record.line,
                f"image {record.image!r} is {size} bytes, above the cap of "
                f"{settings.DISTILLERY_MAX_IMAGE_BYTES}",
            )
        try:
            with Image.open(path) as image:
                width, height = image.size
                if width * height > settings.DISTILLERY_MAX_IMAGE_PIXELS:
                    raise source.error(
                        record.line,
                        f"image {record.image!r} has {width}x{height} pixels, above the cap of "
                        f"{settings.DISTILLERY_MAX_IMAGE_PIXELS}",
                    )
                image.verify()
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError):
            raise source.error(record.line, f"{record.image!r} is not a readable image") from None
        return path


def image_suffix(path: Path) -> str:
    """The file suffix of the format Pillow reads in a checked image.

    Never the uploaded name's extension: a PNG called `x.html` must not be served as a page of
    this site.
    """
    with Image.open(path) as image:
        return IMAGE_SUFFIXES.get(image.format or "", f".{(image.format or 'img').lower()}")
