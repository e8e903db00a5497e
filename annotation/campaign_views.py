"""The admins' campaign pages: the list, the form (new and edit), the campaign page with its
progress and the posts that cannot reach k, and that page's ways out (add members, reopen a post).

The form's choices follow the dataset and batches chosen. With htmx a change of either swaps in
the form again (`refresh`); without JavaScript the form's "Show its batches" and "Show their kinds"
buttons post it for the same answer. `?dataset=ID&batch=ID` pre-fills a new campaign.
"""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.text import capfirst
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.permissions import admin_required
from annotation.forms import SETUP_FIELDS, CampaignForm, MembersAddForm
from annotation.models import Assignment, Campaign
from annotation.rendering import render_markdown
from annotation.selectors import annotator_progress, campaign_progress
from annotation.services import (
    AnnotationError,
    assignments_reopen,
    campaign_add_members,
    campaign_create,
    campaign_update,
)
from annotation.stuck_posts import stuck_posts
from annotation.validators import validate_batch_rateable
from config.converters import parse_id
from generation.models import Batch, Dataset

MULTIPLE = ("batches", "kinds", "questions", "members")
# What the edit form hands to `campaign_update` when it changed (questions are built apart).
EDITABLE = (
    "name",
    "dataset",
    "batches",
    "kinds",
    "overlap",
    "members",
    "instructions",
    "lease_minutes",
    "gold_rate",
    "is_active",
    "show_gold_accuracy",
)


@admin_required
@require_GET
def campaign_list(request: HttpRequest) -> HttpResponse:
    rows = [
        {"campaign": c, "progress": campaign_progress(campaign=c)}
        for c in Campaign.objects.select_related("dataset")
    ]
    return render(request, "annotation/campaign_list.html", {"rows": rows})


def _posted_initial(data: QueryDict, *, skip: tuple[str, ...] = ()) -> dict:
    """A posted form as the initial values of a fresh one (to show the choices that follow)."""
    initial = {}
    for name in CampaignForm.base_fields:
        if name in skip:
            continue
        initial[name] = data.getlist(name) if name in MULTIPLE else data.get(name)
    return {name: value for name, value in initial.items() if value is not None}


def _prefilled(query: QueryDict) -> tuple[dict, list[str]]:
    """The initial values `?dataset=ID&batch=ID...` ask for, and what is wrong with them."""
    initial: dict = {}
    notes: list[str] = []
    dataset = None
    raw = query.get("dataset")
    if raw is not None:
        dataset_id = parse_id(raw)
        dataset = Dataset.objects.filter(pk=dataset_id).first() if dataset_id is not None else None
        if dataset is None:
            notes.append(f"There is no dataset {raw!r}: choose one below.")
    batches = []
    for raw in query.getlist("batch") + query.getlist("batches"):
        batch_id = parse_id(raw)
        batch = Batch.objects.filter(pk=batch_id).first() if batch_id is not None else None
        if batch is None or (dataset is not None and batch.dataset_id != dataset.pk):
            where = f" in dataset {dataset.name}" if dataset is not None else ""
            notes.append(f"There is no batch {raw!r}{where}.")
            continue
        dataset = dataset or batch.dataset
        try:
            validate_batch_rateable(batch)
        except ValidationError as error:
            notes.append(f"{capfirst(error.messages[0])}.")
            continue
        batches.append(batch.pk)
    if dataset is None and raw is None and Dataset.objects.count() == 1:
        dataset = Dataset.objects.get()
    if dataset is not None:
        initial["dataset"] = dataset.pk
    if batches:
        initial["batches"] = batches
    return initial, notes


def _render_form(
    request: HttpRequest,
    form: CampaignForm,
    *,
    campaign: Campaign | None = None,
    notes: list[str] = (),
) -> HttpResponse:
    status = 400 if form.is_bound and form.errors else 200
    template = "annotation/_campaign_form.html" if request.htmx else "annotation/campaign_form.html"
    context = {"form": form, "campaign": campaign, "notes": notes}
    return render(request, template, context, status=status)


@admin_required
@require_http_methods(["GET", "POST"])
def campaign_create_view(request: HttpRequest) -> HttpResponse:
    notes: list[str] = []
    if request.method == "POST" and "refresh" not in request.POST:
        form = CampaignForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                campaign = campaign_create(
                    name=data["name"],
                    dataset=data["dataset"],
                    batches=data["batches"],
                    kinds=data["kinds"],
                    questions=form.question_specs(),
                    overlap=data["overlap"],
                    lease_minutes=data["lease_minutes"],
                    instructions=data["instructions"],
                    gold_rate=data["gold_rate"],
                    members=data["members"],
                    created_by=request.user,
                )
            except AnnotationError as error:
                error.show_on(form)
            else:
                messages.success(request, f"Campaign {campaign.name} created.")
                return redirect("annotation:campaign-detail", pk=campaign.pk)
    elif request.method == "POST":
        form = CampaignForm(initial=_posted_initial(request.POST))
    else:
        initial, notes = _prefilled(request.GET)
        form = CampaignForm(initial=initial)
    return _render_form(request, form, notes=notes)


@admin_required
@require_http_methods(["GET", "POST"])
def campaign_edit_view(request: HttpRequest, pk: int) -> HttpResponse:
    """The same form as a new campaign's; what is rated, the questions and k only until the first
    post is handed out (the fields are then shown fixed, and the service refuses them)."""
    campaign = get_object_or_404(Campaign.objects.select_related("dataset"), pk=pk)
    handed_out = Assignment.objects.filter(campaign=campaign).count()
    if request.method == "POST" and "refresh" not in request.POST:
        form = CampaignForm(request.POST, campaign=campaign, handed_out=handed_out)
        if form.is_valid():
            try:
                campaign_update(campaign=campaign, **_changes(form))
            except AnnotationError as error:
                error.show_on(form)
            else:
                messages.success(request, f"Campaign {campaign.name} saved.")
                return redirect("annotation:campaign-detail", pk=campaign.pk)
    elif request.method == "POST":
        skip = SETUP_FIELDS if handed_out else ()
        initial = _posted_initial(request.POST, skip=skip)
        form = CampaignForm(campaign=campaign, handed_out=handed_out, initial=initial)
    else:
        form = CampaignForm(campaign=campaign, handed_out=handed_out)
    return _render_form(request, form, campaign=campaign)


def _changes(form: CampaignForm) -> dict:
    """The fields the admin changed, as `campaign_update` takes them."""
    changed = set(form.changed_data)
    fields = {name: form.cleaned_data[name] for name in EDITABLE if name in changed}
    if changed & {"questions", "other_questions", "scale"}:
        fields["questions"] = form.question_specs()
    if "batches" in fields:
        fields["batches"] = list(fields["batches"])
    return fields


def _progress_context(campaign: Campaign) -> dict:
    return {
        "campaign": campaign,
        "progress": campaign_progress(campaign=campaign),
        "annotators": annotator_progress(campaign=campaign),
    }


@admin_required
@require_GET
def campaign_detail(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = get_object_or_404(Campaign.objects.select_related("dataset"), pk=pk)
    context = _progress_context(campaign) | {
        "instructions": render_markdown(campaign.instructions),
        "questions": campaign.questions.all(),
        "members": campaign.members.order_by("username"),
        "stuck": stuck_posts(campaign=campaign),
        "members_form": MembersAddForm(campaign=campaign),
    }
    return render(request, "annotation/campaign_detail.html", context)


@admin_required
@require_GET
def campaign_progress_view(request: HttpRequest, pk: int) -> HttpResponse:
    """The live part of the campaign page, polled by htmx."""
    campaign = get_object_or_404(Campaign, pk=pk)
    return render(request, "annotation/_progress.html", _progress_context(campaign))


@admin_required
@require_POST
def campaign_members_add(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = get_object_or_404(Campaign, pk=pk)
    form = MembersAddForm(request.POST, campaign=campaign)
    if form.is_valid():
        members = list(form.cleaned_data["members"])
        added = campaign_add_members(campaign=campaign, members=members)
        names = ", ".join(m.username for m in members)
        messages.success(request, f"{added} annotator{'' if added == 1 else 's'} added: {names}.")
    else:
        for error in form.errors.get("members", []):
            messages.error(request, error)
    return redirect("annotation:campaign-detail", pk=campaign.pk)


@admin_required
@require_POST
def campaign_post_reopen(request: HttpRequest, pk: int, post_id: int) -> HttpResponse:
    campaign = get_object_or_404(Campaign, pk=pk)
    try:
        reopened = assignments_reopen(campaign=campaign, post_id=post_id)
    except AnnotationError as error:
        if error.status == 404:
            raise Http404(str(error)) from None
        messages.error(request, str(error))
    else:
        messages.success(
            request,
            f"Post {post_id} reopened: {reopened} annotator{'' if reopened == 1 else 's'} "
            "who skipped it or let it expire may be offered it again.",
        )
    return redirect("annotation:campaign-detail", pk=campaign.pk)
