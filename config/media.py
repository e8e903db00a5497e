"""Files under MEDIA_ROOT, served to whom they belong.

Admins may open any file. Everyone else only post images (`posts/<dataset id>/...`) of datasets
they rate in an active campaign; exports and uploaded import files are the admins' alone. Anything
else answers 404, so a guessed name tells nothing, and so does a folder that is no id: the dataset
id is read with `config.converters.parse_id` (`posts/²/`, a 23-digit id: 404, no 500). Files are
served with headers that keep a hostile upload from running as a page on our origin.
"""

import mimetypes
import posixpath
from pathlib import Path

from django.conf import settings
from django.core.exceptions import SuspiciousFileOperation
from django.http import FileResponse, Http404, HttpRequest
from django.utils._os import safe_join

from accounts.permissions import is_admin
from annotation.models import Campaign
from config.converters import parse_id

IMAGE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp"}


def _may_read(request: HttpRequest, path: str) -> bool:
    if is_admin(request.user):
        return True
    parts = Path(posixpath.normpath(path)).parts  # "posts/1/../../exports/x" is not a post image
    if len(parts) < 3 or parts[0] != "posts":
        return False
    dataset_id = parse_id(parts[1])
    if dataset_id is None:
        return False
    return Campaign.objects.filter(
        dataset_id=dataset_id, members=request.user, is_active=True
    ).exists()


def media_file(request: HttpRequest, path: str) -> FileResponse:
    if not _may_read(request, path):
        raise Http404("No such file.")
    try:
        full = Path(safe_join(settings.MEDIA_ROOT, path))  # read at request time, not import
    except SuspiciousFileOperation as error:  # the path leaves MEDIA_ROOT
        raise Http404("No such file.") from error
    if not full.is_file():
        raise Http404("No such file.")
    content_type, _ = mimetypes.guess_type(full.name)
    response = FileResponse(full.open("rb"))
    if content_type in IMAGE_TYPES:
        response["Content-Type"] = content_type
    else:
        response["Content-Type"] = "application/octet-stream"
        response["Content-Disposition"] = f'attachment; filename="{full.name}"'
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; img-src 'self'; sandbox"
    return response
