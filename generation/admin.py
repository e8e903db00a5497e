from django.contrib import admin

from generation.models import Batch, Dataset, Endpoint, ImportJob, KnowledgeItem, Post, StageResult


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at", "created_by"]
    search_fields = ["name"]


@admin.register(Post)
class PostAdmin(admin.ModelAdmin):
    list_display = ["external_id", "dataset", "short_text", "image"]
    list_filter = ["dataset"]
    search_fields = ["external_id", "text"]
    list_select_related = ["dataset"]
    show_full_result_count = False

    @admin.display(description="text")
    def short_text(self, obj: Post) -> str:
        return obj.text[:80]


@admin.register(KnowledgeItem)
class KnowledgeItemAdmin(admin.ModelAdmin):
    list_display = ["id", "post", "kind", "text", "batch"]
    list_filter = ["kind"]
    search_fields = ["text"]
    raw_id_fields = ["post", "batch", "stage_result"]
    list_select_related = ["post"]
    show_full_result_count = False


@admin.register(Endpoint)
class EndpointAdmin(admin.ModelAdmin):
    list_display = ["name", "backend", "model", "base_url", "model_path", "concurrency"]


@admin.register(Batch)
class BatchAdmin(admin.ModelAdmin):
    list_display = [
        "id", "dataset", "pipeline", "endpoint", "status_words", "posts_done", "posts_failed"
    ]  # fmt: skip
    list_filter = ["status", "pipeline"]
    raw_id_fields = ["launched_by"]

    @admin.display(description="status", ordering="status")
    def status_words(self, batch: Batch) -> str:
        return batch.status_text


@admin.register(StageResult)
class StageResultAdmin(admin.ModelAdmin):
    list_display = ["id", "post", "stage", "model", "status", "latency_ms"]
    list_filter = ["stage", "status"]
    raw_id_fields = ["post", "batch", "endpoint"]
    show_full_result_count = False


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    list_display = ["id", "dataset_name", "format", "status", "posts_created", "created_at"]
