"""One application error type, and the one place the API turns errors into answers.

Services raise `ApplicationError` (or a subclass) for what a person asked that the rules refuse:
the message is written for that person. The API answers it with its `status` (400 by default, 409
for a conflict with the current state, 404 for something not there) as `{"detail": message}`, or
`{field: [message]}` when the error names a field. Django's `ValidationError`, raised by model
validation, is answered as a 400 the same way. Anything else is a bug: it is not caught here, so
Django logs it and answers 500; a `ValueError` is never taken for bad input.

Pages (htmx views) catch `ApplicationError` and show its message where the person will read it.
"""

from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.defaults import bad_request as django_bad_request
from rest_framework import status as http
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class ApplicationError(Exception):
    """A refusal meant for the person who asked; `status` is the HTTP status the API answers."""

    status: int = http.HTTP_400_BAD_REQUEST

    def __init__(self, message: str, *, field: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        if status is not None:
            self.status = status

    def as_data(self) -> dict[str, Any]:
        if self.field:
            return {self.field: [self.message]}
        return {"detail": self.message}

    def show_on(self, form) -> None:
        """Show the refusal on a page's form: beside the field it names when the form has that
        field and it can be changed, else above the form."""
        field = self.field if self.field in form.fields else None
        if field is not None and form.fields[field].disabled:
            field = None
        form.add_error(field, self.message)


class Conflict(ApplicationError):
    """The request is well formed but the current state refuses it (a finished batch, a name in
    use, a submission from a stale page)."""

    status = http.HTTP_409_CONFLICT


class NotFound(ApplicationError):
    status = http.HTTP_404_NOT_FOUND


def validation_data(error: DjangoValidationError) -> dict[str, Any]:
    """A Django ValidationError as DRF answers a serializer's: field → messages, or detail."""
    if hasattr(error, "error_dict"):
        return {
            ("detail" if field == "__all__" else field): messages
            for field, messages in error.message_dict.items()
        }
    messages = error.messages
    return {"detail": messages[0] if len(messages) == 1 else messages}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, plus ApplicationError and Django's ValidationError as 4xx answers."""
    if isinstance(exc, ApplicationError):
        return Response(exc.as_data(), status=exc.status)
    if isinstance(exc, DjangoValidationError):
        return Response(validation_data(exc), status=http.HTTP_400_BAD_REQUEST)
    return drf_exception_handler(exc, context)


def _limit_message(exception: Exception) -> str:
    if isinstance(exception, RequestDataTooBig):
        return (
            f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes, "
            "the most this server accepts (files sent as multipart uploads do not count)."
        )
    if isinstance(exception, TooManyFieldsSent):
        return (
            f"The request has more than {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS} fields, "
            "the most this server accepts."
        )
    if isinstance(exception, TooManyFilesSent):
        return (
            f"The request has more than {settings.DATA_UPLOAD_MAX_NUMBER_FILES} files, "
            "the most this server accepts."
        )
    return "Bad request."


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """400 (handler400): Django's own refusals, such as a body over the size or field limits, raised
    while the request is read, before any view (or DRF's exception handler) runs. JSON under /api/,
    Django's HTML page elsewhere."""
    if request.path_info.startswith("/api/"):
        return JsonResponse({"detail": _limit_message(exception)}, status=400)
    return django_bad_request(request, exception)
