"""Evaluation pages (admins only): the campaign dashboard, export jobs and their downloads."""

import json

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from accounts.permissions import admin_required
from annotation.models import Campaign
from config.converters import parse_id
from config.errors import ApplicationError
from evaluation.apis import export_file_response
from evaluation.extensions import export_critic
from evaluation.forms import ExportForm, ExportPreviewForm
from evaluation.models import AgreementResult, ExportJob
from evaluation.plots import TENTATIVE_ALPHA, alpha_chart, distribution_chart
from evaluation.selectors.scores import item_count, item_score_page
from evaluation.services import agreement_current, export_create, export_retry


def _agreement_context(campaign: Campaign) -> dict:
    record = agreement_current(campaign=campaign, with_annotators=True)
    questions = []
    for name, figures in ((record.result or {}).get("questions") or {}).items():
        questions.append(
            {
                "name": name,
                "figures": figures,
                "alpha_plot": alpha_chart(name, figures),
                "distribution_plot": distribution_chart(name, figures),
            }
        )
    return {
        "campaign": campaign,
        "record": record,
        "pending": record.status != AgreementResult.Status.DONE,
        "questions": questions,
        # Questions whose overall alpha supports no conclusion, even a tentative one.
        "low_alpha": [
            q
            for q in questions
            if q["figures"]["alpha"] is not None and q["figures"]["alpha"] < TENTATIVE_ALPHA
        ],  # fmt: skip
        "tentative_alpha": TENTATIVE_ALPHA,
        "annotators": record.annotators or [],
        # Results cached before gold handling existed have neither key.
        "excluded": (record.result or {}).get("excluded"),
        "gold": list(((record.result or {}).get("gold") or {}).items()),
    }


def _campaign_kinds(context: dict) -> list[str]:
    kinds: list[str] = []
    for question in context["questions"]:
        kinds += [k for k in question["figures"]["kinds"] if k not in kinds]
    return kinds


@admin_required
@require_GET
def evaluation_home(request: HttpRequest) -> HttpResponse:
    campaigns = Campaign.objects.select_related("dataset").order_by("name")
    exports = ExportJob.objects.select_related("campaign")[:20]
    return render(request, "evaluation/home.html", {"campaigns": campaigns, "exports": exports})


def _dashboard(
    request: HttpRequest, campaign: Campaign, context: dict, form: ExportForm, status: int = 200
) -> HttpResponse:
    context |= {
        "form": form,
        "exports": ExportJob.objects.filter(campaign=campaign)[:10],
        "page": item_score_page(campaign=campaign),
    }
    return render(request, "evaluation/dashboard.html", context, status=status)


@admin_required
@require_GET
def campaign_dashboard(request: HttpRequest, pk: int) -> HttpResponse:
    """Agreement, distributions and annotators; while a worker computes them, the part polls."""
    campaign = get_object_or_404(Campaign, pk=pk)
    context = _agreement_context(campaign)
    if request.htmx:
        return render(request, "evaluation/_agreement.html", context)
    return _dashboard(
        request, campaign, context, ExportForm(campaign=campaign, kinds=_campaign_kinds(context))
    )


@admin_required
@require_GET
def export_preview(request: HttpRequest, pk: int) -> HttpResponse:
    """How many items the export form's filters keep: the counting part for htmx (as the form
    changes), else the dashboard with the form as filled in and the count."""
    campaign = get_object_or_404(Campaign, pk=pk)
    if not request.GET:  # no filter to count: the form itself
        return redirect(reverse("evaluation:campaign-dashboard", args=[pk]) + "#export")
    context = _agreement_context(campaign)
    form = ExportPreviewForm(request.GET, campaign=campaign, kinds=_campaign_kinds(context))
    preview = {"campaign": campaign, "count": None}
    if form.is_valid():
        preview["count"] = item_count(campaign=campaign, filters=form.filters())
        # A critic's unrated items are chosen when the export runs: the count is of rated items.
        preview["critic"] = form.cleaned_data.get("critic")
    if request.htmx:
        # htmx swaps 200 answers only: the form's errors are shown in the part itself.
        context = {"preview": preview, "form": form}
        return render(request, "evaluation/_export_preview.html", context)
    context["preview"] = preview
    return _dashboard(request, campaign, context, form, status=200 if form.is_valid() else 400)


@admin_required
@require_GET
def campaign_item_scores(request: HttpRequest, pk: int) -> HttpResponse:
    """A page of item scores: the table alone for htmx, else a page of its own."""
    campaign = get_object_or_404(Campaign, pk=pk)
    after = parse_id(request.GET.get("after", "")) or 0
    context = {"campaign": campaign, "page": item_score_page(campaign=campaign, after=after)}
    template = "evaluation/_item_scores.html" if request.htmx else "evaluation/item_scores.html"
    return render(request, template, context)


@admin_required
@require_POST
def export_create_view(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = get_object_or_404(Campaign, pk=pk)
    context = _agreement_context(campaign)
    form = ExportForm(request.POST, campaign=campaign, kinds=_campaign_kinds(context))
    if not form.is_valid():
        return _dashboard(request, campaign, context, form, status=400)
    try:
        job = export_create(
            campaign=campaign,
            fmt=form.cleaned_data["format"],
            filters=form.filters(),
            created_by=request.user,
            critic=_critic(form.cleaned_data, campaign),
        )
    except ApplicationError as error:
        error.show_on(form)
        return _dashboard(request, campaign, context, form, status=400)
    return redirect("evaluation:export-detail", pk=job.pk)


def _critic(data: dict, campaign: Campaign):
    """The export form's critic (docs/critics.md), or None when it names none."""
    if not data["critic"]:
        if data["min_precision"] is not None or data["critic_threshold"] is not None:
            raise ApplicationError("name the critic these apply to", field="critic")
        return None
    return export_critic(
        name=data["critic"],
        campaign=campaign,
        min_precision=data["min_precision"],
        threshold=data["critic_threshold"],
    )


@admin_required
@require_GET
def export_detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(ExportJob.objects.select_related("campaign"), pk=pk)
    template = "evaluation/_export_status.html" if request.htmx else "evaluation/export_detail.html"
    manifest = (
        json.dumps(job.manifest, indent=2, ensure_ascii=False) if job.manifest is not None else ""
    )
    return render(request, template, {"job": job, "manifest_json": manifest})


@admin_required
@require_GET
def export_download(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(ExportJob, pk=pk)
    if not job.is_downloadable:
        raise Http404("This export is not finished.")
    return export_file_response(job)


@admin_required
@require_POST
def export_retry_view(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(ExportJob.objects.select_related("campaign"), pk=pk)
    try:
        retry = export_retry(job=job, created_by=request.user)
    except ApplicationError as error:
        messages.error(request, error.message)
        return redirect("evaluation:export-detail", pk=job.pk)
    return redirect("evaluation:export-detail", pk=retry.pk)
