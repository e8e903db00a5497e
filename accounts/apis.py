from rest_framework import parsers, serializers, status
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.request import Request
from rest_framework.response import Response

from accounts import throttling
from accounts.forms import TOO_MANY
from config.parsers import SafeJSONParser


class TokenObtainApi(ObtainAuthToken):
    """`POST username, password` → `{"token": ...}`; throttled like the login page."""

    # DRF's own list for this view, with JSON nested too deeply refused (400).
    parser_classes = (parsers.FormParser, parsers.MultiPartParser, SafeJSONParser)

    def post(self, request: Request, *args, **kwargs) -> Response:
        data = request.data if isinstance(request.data, dict) else {}
        username = str(data.get("username", ""))
        if throttling.login_blocked(request._request, username):
            return Response({"detail": TOO_MANY}, status=status.HTTP_429_TOO_MANY_REQUESTS)
        try:
            response = super().post(request, *args, **kwargs)
        except serializers.ValidationError:
            throttling.login_failed(request._request, username)
            raise
        throttling.login_succeeded(request._request, username)
        return response
