"""Batch pages (admins only): list, launch, watch live (an htmx partial), and the actions.

The live partial carries the status in words, the retrying state, the failures and the actions
the batch allows now (`batch_actions`), so all of them change while the page is watched.
"""

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.permissions import admin_required
from config.errors import ApplicationError
from generation.limits import form_field
from generation.models import Batch, Dataset, Endpoint
from generation.pipelines.base import all_pipelines
from generation.selectors.batches import batch_failures, batch_list, batch_progress
from generation.services.batches import (
    batch_actions,
    batch_cancel,
    batch_launch,
    batch_pause,
    batch_resume,
    batch_retry_failed,
)

SAMPLING_FIELDS = ["temperature", "top_p", "max_tokens", "seed"]


def stage_field_name(pipeline: str, stage: str) -> str:
    return f"stage_{pipeline}_{stage}"


class BatchLaunchForm(forms.Form):
    dataset = forms.ModelChoiceField(
        queryset=Dataset.objects.order_by("name"), to_field_name="name"
    )
    pipeline = forms.ChoiceField(
        initial="miko", help_text="The stage menus below are the chosen pipeline's."
    )
    endpoint = forms.ModelChoiceField(
        queryset=Endpoint.objects.order_by("name"),
        to_field_name="name",
        help_text="Every stage runs here unless you pick another endpoint for it below.",
    )
    limit = form_field("limit", required=False, help_text="Only the first N posts")
    temperature = forms.FloatField(min_value=0, max_value=2, required=False)
    top_p = forms.FloatField(min_value=0, max_value=1, required=False, label="Top p")
    max_tokens = forms.IntegerField(min_value=1, required=False, label="Max tokens")
    seed = forms.IntegerField(min_value=0, required=False)
    token_budget = form_field(
        "token_budget",
        required=False,
        help_text="The batch stops when it has used this many tokens",
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.pipelines = all_pipelines()
        self.fields["pipeline"].choices = [(name, name) for name in self.pipelines]
        self.stage_fields: dict[str, list[tuple[str, str]]] = {}
        for name, pipeline in self.pipelines.items():
            for stage in pipeline.stages:
                field_name = stage_field_name(name, stage.name)
                self.fields[field_name] = forms.ModelChoiceField(
                    queryset=Endpoint.objects.order_by("name"),
                    to_field_name="name",
                    required=False,
                    empty_label="(the batch endpoint)",
                    label=stage.name,
                )
                self.stage_fields.setdefault(name, []).append((stage.name, field_name))

    def chosen_pipeline(self) -> str:
        """The pipeline whose stage menus show: the one submitted, else the default."""
        chosen = self["pipeline"].value()
        return chosen if chosen in self.pipelines else self.fields["pipeline"].initial

    def stage_groups(self) -> list[tuple[str, bool, list]]:
        """(pipeline, whether it is the chosen one, its stage fields) for every pipeline."""
        chosen = self.chosen_pipeline()
        return [
            (name, name == chosen, [self[field_name] for _, field_name in fields])
            for name, fields in self.stage_fields.items()
        ]

    def clean(self) -> dict:
        # Only the chosen pipeline's stage menus count: the others' (hidden, or sent by a page
        # without JavaScript) are ignored, errors included.
        data = super().clean()
        for name, fields in self.stage_fields.items():
            if name != data.get("pipeline"):
                for _, field_name in fields:
                    self.errors.pop(field_name, None)
                    data.pop(field_name, None)
        return data

    def launch_arguments(self) -> dict:
        data = self.cleaned_data
        pipeline = data["pipeline"]
        return {
            "dataset": data["dataset"],
            "pipeline": pipeline,
            "endpoint": data["endpoint"],
            "stage_endpoints": {
                stage: data[field_name]
                for stage, field_name in self.stage_fields[pipeline]
                if data.get(field_name)
            },
            "limit": data["limit"],
            "parameters": {k: data[k] for k in SAMPLING_FIELDS if data.get(k) is not None},
            "token_budget": data["token_budget"],
        }

    def apply_errors(self, error: ValidationError) -> None:
        errors = getattr(error, "message_dict", {"__all__": error.messages})
        for field, field_messages in errors.items():
            for message in field_messages:
                self.add_error(field if field in self.fields else None, message)


@admin_required
def batch_list_page(request: HttpRequest) -> HttpResponse:
    return render(request, "generation/batch_list.html", {"batches": batch_list()[:200]})


@admin_required
def batch_new(request: HttpRequest) -> HttpResponse:
    if request.method == "POST" and "show_stages" in request.POST:
        # Without JavaScript, "Show the chosen pipeline's stages" redraws the form, as filled in.
        form = BatchLaunchForm(initial=request.POST.dict())
        return render(request, "generation/batch_form.html", {"form": form})
    form = BatchLaunchForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            batch = batch_launch(launched_by=request.user, **form.launch_arguments())
        except ValidationError as error:
            form.apply_errors(error)
        else:
            # No "queued" message: the page's live status says it, and keeps saying the truth.
            return redirect("generation:batch-detail", batch_id=batch.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "generation/batch_form.html", {"form": form}, status=status)


def _progress_context(batch: Batch) -> dict:
    return {
        "batch": batch,
        "progress": batch_progress(batch=batch),
        "actions": batch_actions(batch),
        "failures": batch_failures(batch=batch),
    }


@admin_required
def batch_detail(request: HttpRequest, batch_id: int) -> HttpResponse:
    batch = get_object_or_404(batch_list(), pk=batch_id)
    return render(request, "generation/batch_detail.html", _progress_context(batch))


@admin_required
def batch_progress_partial(request: HttpRequest, batch_id: int) -> HttpResponse:
    """The live part of the batch page; it stops polling itself once the batch has finished."""
    batch = get_object_or_404(batch_list(), pk=batch_id)
    return render(request, "generation/_batch_progress.html", _progress_context(batch))


BATCH_ACTIONS = {
    "pause": (batch_pause, "paused"),
    "resume": (batch_resume, "resumed"),
    "cancel": (batch_cancel, "cancelled"),
    "retry-failed": (batch_retry_failed, "queued to retry its failed posts"),
}


@admin_required
@require_POST
def batch_action(request: HttpRequest, batch_id: int, action: str) -> HttpResponse:
    batch = get_object_or_404(Batch, pk=batch_id)
    if action not in BATCH_ACTIONS:
        return HttpResponse(status=404)
    service, done = BATCH_ACTIONS[action]
    try:
        batch = service(batch=batch)
    except ApplicationError as error:
        if request.htmx:
            batch = batch_list().get(pk=batch.pk)
            context = {**_progress_context(batch), "action_error": error.message}
            # 200, not the error's 409: htmx swaps only successful answers, and the refusal must
            # show (beside the batch as it is now, with the actions it allows).
            return render(request, "generation/_batch_progress.html", context)
        messages.error(request, error.message)
    else:
        if request.htmx:
            batch = batch_list().get(pk=batch.pk)
            return render(request, "generation/_batch_progress.html", _progress_context(batch))
        messages.success(request, f"Batch {batch.pk} {done}.")
    return redirect("generation:batch-detail", batch_id=batch.pk)
