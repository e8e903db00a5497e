from django.contrib import admin

from students.models import EvaluationRun, PostSplit, SplitAssignment, StudentTraining


@admin.register(SplitAssignment)
class SplitAssignmentAdmin(admin.ModelAdmin):
    list_display = ["id", "dataset", "source", "seed", "origin", "created_at"]
    list_filter = ["source"]
    raw_id_fields = ["dataset", "created_by"]


@admin.register(PostSplit)
class PostSplitAdmin(admin.ModelAdmin):
    list_display = ["post", "dataset", "name", "assignment"]
    list_filter = ["name"]
    raw_id_fields = ["post", "dataset", "assignment"]


@admin.register(EvaluationRun)
class EvaluationRunAdmin(admin.ModelAdmin):
    list_display = ["id", "dataset", "split", "endpoint_name", "pipeline", "status", "created_at"]
    list_filter = ["status", "pipeline", "split"]
    raw_id_fields = ["dataset", "endpoint", "created_by"]
    readonly_fields = ["scores", "manifest", "answers"]


@admin.register(StudentTraining)
class StudentTrainingAdmin(admin.ModelAdmin):
    list_display = ["id", "export", "base_model", "method", "status", "endpoint", "created_at"]
    list_filter = ["status", "method"]
    raw_id_fields = ["export", "endpoint", "created_by"]
    readonly_fields = ["losses"]
