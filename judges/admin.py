from django.contrib import admin

from judges.models import JudgeRating, JudgeRun


@admin.register(JudgeRun)
class JudgeRunAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "campaign",
        "endpoint",
        "template_version",
        "status",
        "ratings_done",
        "ratings_failed",
        "ratings_total",
        "created_at",
    ]
    list_filter = ["status", "template_version"]
    list_select_related = ["campaign", "endpoint"]
    raw_id_fields = ["campaign", "endpoint", "batch", "launched_by"]
    readonly_fields = ["template_text", "template_hash", "runner", "heartbeat_at"]


@admin.register(JudgeRating)
class JudgeRatingAdmin(admin.ModelAdmin):
    list_display = ["id", "run", "item", "question", "status", "value", "cached"]
    list_filter = ["status", "cached"]
    raw_id_fields = ["run", "item", "question"]
    readonly_fields = ["call_key", "request", "raw_answer", "error"]
