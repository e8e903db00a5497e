from django.contrib.auth import authenticate
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import parsers, serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import throttling
from accounts.forms import TOO_MANY
from accounts.services import token_expires_at, token_issue, token_revoke
from config.parsers import SafeJSONParser

BAD_CREDENTIALS = "Unable to log in with provided credentials."


class TokenObtainInputSerializer(serializers.Serializer):
    # Normalised by the view with the function the throttle uses, not by the field.
    username = serializers.CharField(max_length=150, trim_whitespace=False)
    password = serializers.CharField(
        max_length=4096, trim_whitespace=False, style={"input_type": "password"}
    )


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField()
    expires = serializers.DateTimeField()


class TokenObtainApi(APIView):
    """`POST username, password` → `{"token": ..., "expires": ...}`; throttled like the login page.

    The username is normalised and counted as at every other login door (accounts/throttling.py).
    """

    # No authentication: a stale session or an expired token must not stand in the way of a login.
    authentication_classes = ()
    permission_classes = (AllowAny,)
    # JSON nested too deeply is refused (400), as everywhere in the API.
    parser_classes = (SafeJSONParser, parsers.FormParser, parsers.MultiPartParser)

    @extend_schema(
        request=TokenObtainInputSerializer,
        responses={
            200: TokenSerializer,
            429: OpenApiResponse(description="Too many failed logins for now."),
        },
    )
    def post(self, request: Request) -> Response:
        data = TokenObtainInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        username = throttling.normalize_username(data.validated_data["username"])
        if throttling.login_blocked(request._request, username):
            return Response({"detail": TOO_MANY}, status=status.HTTP_429_TOO_MANY_REQUESTS)
        user = authenticate(
            request._request, username=username, password=data.validated_data["password"]
        )
        if user is None:
            throttling.login_failed(request._request, username)
            raise serializers.ValidationError(
                {"non_field_errors": [BAD_CREDENTIALS]}, code="authorization"
            )
        throttling.login_succeeded(request._request, username)
        token = token_issue(user=user)
        return Response(
            TokenSerializer({"token": token.key, "expires": token_expires_at(token=token)}).data
        )


class TokenRevokeApi(APIView):
    """`POST` → 204: the caller's API token stops working (a new login issues a new one)."""

    @extend_schema(request=None, responses={204: None})
    def post(self, request: Request) -> Response:
        token_revoke(user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
