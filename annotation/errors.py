"""The annotation app's refusal: `AnnotationError`, an `ApplicationError` the API answers as 400."""

from config.errors import ApplicationError


class AnnotationError(ApplicationError):
    """A request the rules refuse; the message is meant for the person who made it.

    The API answers it as a 400 with `{"detail": message}` (config/errors.py); pages show the
    message beside the form; the management commands turn it into a `CommandError`.
    """


class StaleSubmission(AnnotationError):
    """A submission from a page that is out of date: the post was submitted since that page was
    shown (from another tab or window of the same annotator). The API answers it as a 409."""

    status = 409
