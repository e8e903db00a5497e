from datetime import datetime

from rest_framework.authtoken.models import Token

from accounts.services import token_expired, token_expires_at


def token_for(*, user) -> dict[str, datetime | bool] | None:
    """What the profile page says of the user's API token (never its key), or None."""
    token = Token.objects.filter(user=user).first()
    if token is None:
        return None
    return {
        "created": token.created,
        "expires": token_expires_at(token=token),
        "expired": token_expired(token=token),
    }
