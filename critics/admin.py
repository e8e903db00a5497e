from django.contrib import admin

from critics.models import Critic


@admin.register(Critic)
class CriticAdmin(admin.ModelAdmin):
    """Critics are trained through train_critic, the page or the API; here their record."""

    list_display = ["name", "version", "campaign", "question", "threshold", "status",
                    "scoring_status", "trained_at"]  # fmt: skip
    list_filter = ["status", "scoring_status", "kind"]
    search_fields = ["name"]
    raw_id_fields = ["campaign", "question", "created_by"]
    readonly_fields = ["metrics", "model_file", "sklearn_version", "seconds", "scored_through",
                       "scored", "to_score", "scoring_seconds", "trained_at"]  # fmt: skip
