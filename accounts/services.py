from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token

from accounts.permissions import ANNOTATORS_GROUP

User = get_user_model()


@transaction.atomic
def user_create_admin(*, username: str, password: str, email: str = "") -> User:
    user, _ = User.objects.get_or_create(username=username, defaults={"email": email})
    user.is_staff = True
    user.is_superuser = True
    user.is_active = True
    user.set_password(password)
    user.save()
    return user


@transaction.atomic
def user_create_annotator(
    *, username: str, password: str | None = None, active: bool = True
) -> User:
    """Create (or update) an annotator. Without a password the account cannot log in."""
    user, _ = User.objects.get_or_create(username=username)
    if password is None:
        user.set_unusable_password()
    else:
        user.set_password(password)
    user.is_active = active
    user.save()
    group, _ = Group.objects.get_or_create(name=ANNOTATORS_GROUP)
    user.groups.add(group)
    return user


def token_expires_at(*, token: Token) -> datetime:
    """When `token` stops working: `DISTILLERY_TOKEN_TTL_HOURS` after it was issued."""
    return token.created + timedelta(hours=settings.DISTILLERY_TOKEN_TTL_HOURS)


def token_expired(*, token: Token) -> bool:
    return token_expires_at(token=token) <= timezone.now()


@transaction.atomic
def token_issue(*, user: User) -> Token:
    """The user's API token: the one they hold while it lasts, else a new one.

    A user has one token (DRF's model), shared by all their API clients until it expires, they
    revoke it, or their password changes."""
    expired_before = timezone.now() - timedelta(hours=settings.DISTILLERY_TOKEN_TTL_HOURS)
    Token.objects.filter(user=user, created__lte=expired_before).delete()
    token, _ = Token.objects.get_or_create(user=user)
    return token


def token_revoke(*, user: User) -> bool:
    """Delete the user's API token; False when they had none."""
    deleted, _ = Token.objects.filter(user=user).delete()
    return bool(deleted)
