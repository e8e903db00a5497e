from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

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
