"""The annotation app's refusal: `AnnotationError`, an `ApplicationError` the API answers as 400."""

from config.errors import ApplicationError


class AnnotationError(ApplicationError):
    """A request the rules refuse; the message is meant for the person who made it.

    The API answers it as a 400 with `{"detail": message}` (config/errors.py); pages show the
    message beside the form; the management commands turn it into a `CommandError`.
    """
