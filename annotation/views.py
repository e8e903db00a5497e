"""Pages: the annotator's home and rating page (the admins' campaign pages are in campaign_views).

The rating page works as plain forms; with htmx the form swaps the next post into `#task`.
"""

import re

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from annotation.models import Assignment, Campaign
from annotation.progress_cache import progress_count_finished, progress_shown
from annotation.rendering import render_markdown
from annotation.selectors import (
    annotator_done_count,
    gold_accuracy,
    previous_assignment,
    task_view,
)
from annotation.services import (
    AnnotationError,
    RatingInput,
    StaleSubmission,
    assignment_claim,
    assignment_skip,
    assignment_submit,
)


def _member_campaign(request: HttpRequest, pk: int) -> Campaign:
    """A campaign the user rates in: members only; everyone else gets a 404."""
    return get_object_or_404(
        Campaign.objects.filter(members=request.user, is_active=True).distinct(), pk=pk
    )


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    campaigns = []
    for campaign in request.user.campaigns.filter(is_active=True).order_by("name"):
        campaigns.append(
            {
                "campaign": campaign,
                "progress": progress_shown(campaign=campaign),
                "mine": annotator_done_count(campaign=campaign, annotator=request.user),
                "gold": (
                    gold_accuracy(campaign=campaign, annotator=request.user)
                    if campaign.show_gold_accuracy
                    else None
                ),
            }
        )
    return render(request, "annotation/home.html", {"campaigns": campaigns})


def _render_task(
    request: HttpRequest,
    campaign: Campaign,
    assignment: Assignment | None,
    *,
    posted: dict[tuple[int, int], int] | None = None,
    error: str = "",
    stale: bool = False,
    confirm_skip: bool = False,
    status: int = 200,
) -> HttpResponse:
    mine = annotator_done_count(campaign=campaign, annotator=request.user)
    context = {
        "campaign": campaign,
        "instructions": render_markdown(campaign.instructions),
        "progress": progress_shown(campaign=campaign),
        "mine": mine,
        # Without JavaScript the instructions are open until the first post is done; the page's
        # script remembers the annotator's choice per campaign instead.
        "first_visit": mine == 0,
        "error": error,
        "stale": stale,
        "confirm_skip": confirm_skip,
        "view": None,
    }
    if assignment is not None:
        view = task_view(assignment=assignment)
        for item in view.items:
            for question in view.questions:
                value = (posted or {}).get((item.item.pk, question.question.pk))
                if value is not None:
                    item.values[question.question.pk] = value
        view.refresh_cells()
        context["view"] = view
        context["cells"] = len(view.items) * len(view.questions)
        context["answered"] = sum(len(item.values) for item in view.items)
        context["previous"] = previous_assignment(
            campaign=campaign,
            annotator=request.user,
            before=assignment if assignment.status == Assignment.Status.DONE else None,
        )
        context["editing"] = assignment.status == Assignment.Status.DONE
    template = "annotation/_task.html" if request.htmx else "annotation/rate.html"
    return render(request, template, context, status=status)


@require_GET
def task_next(request: HttpRequest, pk: int) -> HttpResponse:
    """The annotator's current post: the open lease (so a reload is harmless), or a new one."""
    return _next_task(request, _member_campaign(request, pk))


def _next_task(request: HttpRequest, campaign: Campaign) -> HttpResponse:
    lease = assignment_claim(campaign=campaign, annotator=request.user)
    response = _render_task(request, campaign, lease)
    if request.htmx:
        response["HX-Push-Url"] = reverse("annotation:task-next", args=[campaign.pk])
    return response


# The rating form's fields: `r-<item id>-<question id>` = value; and the seconds the page measured.
_RATING_FIELD = re.compile(r"r-([0-9]+)-([0-9]+)")
_WHOLE_NUMBER = re.compile(r"\s*[-+]?[0-9]+\s*")
_DECIMAL = re.compile(r"\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?\s*")


def _posted_ratings(request: HttpRequest) -> tuple[list[RatingInput], dict]:
    ratings, values = [], {}
    for key, raw in request.POST.items():
        if not key.startswith("r-"):
            continue
        field = _RATING_FIELD.fullmatch(key)
        if field is None or not _WHOLE_NUMBER.fullmatch(raw):
            raise AnnotationError(f"{raw!r} is not a valid rating")
        rating = RatingInput(int(field[1]), int(field[2]), int(raw))
        ratings.append(rating)
        values[(rating.item_id, rating.question_id)] = rating.value
    return ratings, values


def _seconds(request: HttpRequest) -> float | None:
    """The seconds the page measured; None (the lease's time counts) when absent or not a number."""
    raw = request.POST.get("seconds", "")
    return float(raw) if _DECIMAL.fullmatch(raw) else None


def _version(request: HttpRequest) -> int | None:
    """The assignment's version the page was shown; None (no check) when the form has none."""
    raw = request.POST.get("version", "")
    if raw == "":
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9:
        raise AnnotationError(f"{raw!r} is not a valid version of this page; reload it")
    return int(raw)


def assignment_rate(request: HttpRequest, pk: int, assignment_id: int) -> HttpResponse:
    """GET shows one of the annotator's own posts (to change a done one); POST submits it."""
    campaign = _member_campaign(request, pk)
    assignment = get_object_or_404(
        Assignment.objects.select_related("post", "campaign"),
        pk=assignment_id,
        campaign=campaign,
        annotator=request.user,
    )
    if request.method == "GET":
        if assignment.status not in (Assignment.Status.LEASED, Assignment.Status.DONE):
            raise Http404("This post is no longer yours to rate.")
        return _render_task(request, campaign, assignment)
    if request.method != "POST":
        return HttpResponse(status=405)
    posted: dict = {}
    finished_before = assignment.status == Assignment.Status.DONE
    try:
        ratings, posted = _posted_ratings(request)
        assignment_submit(
            assignment=assignment,
            ratings=ratings,
            seconds=_seconds(request),
            version=_version(request),
        )
    except StaleSubmission as error:
        # Show what is saved now (and its version), not this page's answers.
        assignment.refresh_from_db()
        return _render_task(
            request,
            campaign,
            assignment,
            error=str(error),
            stale=True,
            status=200 if request.htmx else error.status,
        )
    except AnnotationError as error:
        # htmx swaps only 2xx answers; the error is in the page either way.
        status = 200 if request.htmx else 400
        return _render_task(
            request, campaign, assignment, posted=posted, error=str(error), status=status
        )
    if not finished_before:
        progress_count_finished(campaign=campaign)
    return _after_post(request, campaign)


def _after_post(request: HttpRequest, campaign: Campaign) -> HttpResponse:
    if request.htmx:
        return _next_task(request, campaign)
    return redirect("annotation:task-next", pk=campaign.pk)


@require_POST
def assignment_skip_view(request: HttpRequest, pk: int, assignment_id: int) -> HttpResponse:
    """Skip a post once confirmed (`confirm=yes`); without it, the page asks first. The page's
    script asks in place, without a request; this is the way without JavaScript."""
    campaign = _member_campaign(request, pk)
    assignment = get_object_or_404(
        Assignment.objects.select_related("post", "campaign"),
        pk=assignment_id,
        campaign=campaign,
        annotator=request.user,
    )
    # The confirming button's value, or the field the page's script fills in.
    if "yes" not in request.POST.getlist("confirm"):
        if assignment.status != Assignment.Status.LEASED:
            raise Http404("This post is no longer yours to skip.")
        return _render_task(request, campaign, assignment, confirm_skip=True)
    assignment_skip(assignment=assignment)
    return _after_post(request, campaign)
