"""The Django admin of the annotation app.

What the API refuses to change, the admin shows read-only: a campaign's overlap once it exists
(the tasks' counters were built on it), a task's `taken` and an assignment's `status` (only the
claim, submit, skip and expiry keep them consistent). Settings are checked by the validators the
form and API use (annotation.validators); gold answers go through the service.
"""

from django.contrib import admin

from annotation.models import Assignment, Campaign, GoldAnswer, Question, Rating, Task
from annotation.selectors import tasks_with_done
from annotation.services import campaign_add_tasks, gold_answers_set
from annotation.validators import CAMPAIGN_VALIDATORS, RATEABLE_BATCH_STATUSES
from generation.models import Batch


class QuestionInline(admin.TabularInline):
    """The campaign's questions: read-only once a post has been handed out, as the form, the API
    and `campaign_update` have them (ratings already given answer these questions)."""

    model = Question
    extra = 0

    def _started(self, obj) -> bool:
        return obj is not None and Assignment.objects.filter(campaign=obj).exists()

    def has_add_permission(self, request, obj=None):
        return super().has_add_permission(request, obj) and not self._started(obj)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and not self._started(obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and not self._started(obj)


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ["name", "dataset", "overlap", "is_active", "created_at"]
    filter_horizontal = ["members", "batches"]
    inlines = [QuestionInline]
    actions = ["add_tasks"]

    def get_readonly_fields(self, request, obj=None):
        # The overlap is chosen when the campaign is made, never changed afterwards (as the API).
        return ["overlap"] if obj is not None else []

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        # Only finished batches can be rated, as on the form, the API and the services.
        if db_field.name == "batches":
            kwargs["queryset"] = Batch.objects.filter(status__in=RATEABLE_BATCH_STATUSES)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        validator = CAMPAIGN_VALIDATORS.get(db_field.name)
        if field is not None and validator is not None:
            field.validators.append(validator)
        return field

    def save_related(self, request, form, formsets, change) -> None:
        # Batches and kinds are known only now: give every post with items its task.
        super().save_related(request, form, formsets, change)
        campaign_add_tasks(campaign=form.instance)

    @admin.action(description="Add tasks for posts with new items")
    def add_tasks(self, request, queryset) -> None:
        added = sum(campaign_add_tasks(campaign=campaign) for campaign in queryset)
        self.message_user(request, f"{added} task(s) added.")


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ["id", "campaign", "post", "is_gold", "taken", "done"]
    raw_id_fields = ["post"]
    readonly_fields = ["taken"]
    show_full_result_count = False

    def get_queryset(self, request):
        return tasks_with_done(super().get_queryset(request))

    @admin.display(description="done", ordering="done")
    def done(self, task: Task) -> int:
        return task.done


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ["id", "campaign", "post", "annotator", "status", "expires_at"]
    list_filter = ["status"]
    raw_id_fields = ["task", "post"]
    readonly_fields = ["status"]
    show_full_result_count = False


@admin.register(Rating)
class RatingAdmin(admin.ModelAdmin):
    list_display = ["id", "campaign", "item", "question", "annotator", "value"]
    raw_id_fields = ["item", "assignment"]
    show_full_result_count = False


@admin.register(GoldAnswer)
class GoldAnswerAdmin(admin.ModelAdmin):
    list_display = ["campaign", "item", "question", "value"]
    raw_id_fields = ["item"]

    def save_model(self, request, obj, form, change) -> None:
        # Through the service, so the item's post becomes a gold task and the value is checked.
        gold_answers_set(
            campaign=obj.campaign, answers=[(obj.item_id, obj.question.name, obj.value)]
        )
