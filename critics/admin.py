from django.contrib import admin

from critics.models import Critic


@admin.register(Critic)
class CriticAdmin(admin.ModelAdmin):
    """Read-only: critics are trained through train_critic, the page or the API."""

    list_display = ["name", "version", "campaign", "question", "threshold", "status",
                    "scoring_status", "trained_at"]  # fmt: skip
    list_filter = ["status", "scoring_status", "kind"]
    search_fields = ["name"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
