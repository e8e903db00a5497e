"""Token authentication with one prepared statement on PostgreSQL.

DRF's `TokenAuthentication` looks the token up through the ORM (`select_related("user")`), which
costs more than a millisecond of CPU per request; annotators call the API twice per post, so on
PostgreSQL this class reads the same rows with one prepared statement and builds the same model
instances. The rules and messages are DRF's: an unknown key or an inactive user answers 401; so
does a token older than `DISTILLERY_TOKEN_TTL_HOURS` (accounts/services.py).
"""

from functools import cache

from django.contrib.auth import get_user_model
from django.db import connection
from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions
from rest_framework.authtoken.models import Token

from accounts.services import token_expired
from config import prepared

EXPIRED = _("Token has expired.")


@cache
def _token_query() -> tuple[str, list[str], list[str]]:
    user_model = get_user_model()
    token_fields = [f.column for f in Token._meta.concrete_fields]
    user_fields = [f.column for f in user_model._meta.concrete_fields]
    sql = (
        f"SELECT {', '.join(f't.{c}' for c in token_fields)}, "
        f"{', '.join(f'u.{c}' for c in user_fields)} "
        f"FROM {Token._meta.db_table} t JOIN {user_model._meta.db_table} u "
        f"ON u.{user_model._meta.pk.column} = t.user_id WHERE t.key = %s"
    )
    return (
        sql,
        [f.attname for f in Token._meta.concrete_fields],
        [f.attname for f in user_model._meta.concrete_fields],
    )


class TokenAuthentication(authentication.TokenAuthentication):
    def authenticate_credentials(self, key):
        if connection.vendor != "postgresql":
            user, token = super().authenticate_credentials(key)
            if token_expired(token=token):
                raise exceptions.AuthenticationFailed(EXPIRED)
            return (user, token)
        sql, token_names, user_names = _token_query()
        row = prepared.fetchone(sql, [key])
        if row is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        split = len(token_names)
        token = Token.from_db(connection.alias, token_names, row[:split])
        user = get_user_model().from_db(connection.alias, user_names, row[split:])
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        if token_expired(token=token):
            raise exceptions.AuthenticationFailed(EXPIRED)
        token.user = user
        return (user, token)
