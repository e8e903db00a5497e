"""Judge pages (admins only): launch and list runs, watch one live (an htmx partial), cancel or
retry it, and read how its judge agrees with the people; a campaign's judges on one page."""

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.permissions import admin_required
from annotation.models import Campaign
from config.converters import parse_id
from config.errors import ApplicationError
from generation.limits import form_field
from generation.models import Endpoint
from judges.agreement import figure_text, judge_agreement
from judges.models import JudgeRun
from judges.prompt import DEFAULT_VERSION, template_versions
from judges.selectors import judge_run_failures, judge_run_list
from judges.services import judge_run_cancel, judge_run_create, judge_run_retry

# Runs whose agreement the campaign's page computes (each takes a bootstrap).
CAMPAIGN_RUNS_SHOWN = 3


class JudgeRunForm(forms.Form):
    campaign = forms.ModelChoiceField(queryset=Campaign.objects.order_by("name"))
    endpoint = forms.ModelChoiceField(
        queryset=Endpoint.objects.filter(backend=Endpoint.Backend.OPENAI).order_by("name"),
        to_field_name="name",
        help_text="An OpenAI-compatible endpoint (a local model is served through vLLM).",
    )
    questions = forms.CharField(
        required=False,
        max_length=500,
        help_text="Comma-separated question names; empty for all of the campaign's.",
    )
    template_version = forms.ChoiceField(initial=DEFAULT_VERSION)
    token_budget = form_field(
        "token_budget", required=False, help_text="The run stops when it has used this many"
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["template_version"].choices = [(v, v) for v in template_versions()]

    def create_arguments(self) -> dict:
        data = self.cleaned_data
        names = [name.strip() for name in data["questions"].split(",") if name.strip()]
        return {
            "campaign": data["campaign"],
            "endpoint": data["endpoint"],
            "questions": names or None,
            "template_version": data["template_version"],
            "token_budget": data["token_budget"],
        }


@admin_required
def judge_run_list_page(request: HttpRequest) -> HttpResponse:
    initial = {}
    if campaign_id := parse_id(request.GET.get("campaign")):
        initial["campaign"] = campaign_id
    form = JudgeRunForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            run = judge_run_create(launched_by=request.user, **form.create_arguments())
        except ApplicationError as error:
            error.show_on(form)
        else:
            return redirect("judges:run-detail", run_id=run.pk)
    status = 400 if request.method == "POST" else 200
    context = {"form": form, "runs": judge_run_list()[:200]}
    return render(request, "judges/run_list.html", context, status=status)


def agreement_view(run: JudgeRun) -> list[dict]:
    """The run's agreement as the page's tables read it."""
    if not run.ratings_done:
        return []
    rows = []
    for name, figures in judge_agreement(run=run)["questions"].items():
        rows.append(
            {
                "name": name,
                "figures": figures,
                "summary": [
                    ("Alpha, people alone", figure_text(figures.get("alpha_people"))),
                    ("Alpha, people and the judge", figure_text(figures.get("alpha_with_judge"))),
                    ("Spearman, judge vs people's mean", figure_text(figures.get("spearman"))),
                    ("Mean absolute error", figure_text(figures.get("mae"))),
                ],
                "thresholds": [
                    {
                        **row,
                        "precision_text": figure_text(row["precision"]),
                        "recall_text": figure_text(row["recall"]),
                    }
                    for row in figures.get("thresholds", [])
                ],
            }
        )
    return rows


def _progress_context(run: JudgeRun) -> dict:
    return {"run": run, "failures": judge_run_failures(run=run)}


@admin_required
def judge_run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(judge_run_list(), pk=run_id)
    context = {**_progress_context(run), "agreement": agreement_view(run)}
    return render(request, "judges/run_detail.html", context)


@admin_required
def judge_run_progress(request: HttpRequest, run_id: int) -> HttpResponse:
    """The live part of the run page; it stops polling itself once the run has finished."""
    run = get_object_or_404(judge_run_list(), pk=run_id)
    return render(request, "judges/_run_progress.html", _progress_context(run))


ACTIONS = {
    "cancel": (judge_run_cancel, "cancelled"),
    "retry": (judge_run_retry, "queued to ask again what failed or was left"),
}


@admin_required
@require_POST
def judge_run_action(request: HttpRequest, run_id: int, action: str) -> HttpResponse:
    if action not in ACTIONS:
        raise Http404("No such action.")
    run = get_object_or_404(JudgeRun, pk=run_id)
    service, done = ACTIONS[action]
    try:
        run = service(run=run)
    except ApplicationError as error:
        if request.htmx:
            context = {**_progress_context(run), "action_error": error.message}
            return render(request, "judges/_run_progress.html", context, status=error.status)
        messages.error(request, error.message)
    else:
        if request.htmx:
            return render(request, "judges/_run_progress.html", _progress_context(run))
        messages.success(request, f"Judge run {run.pk} {done}.")
    return redirect("judges:run-detail", run_id=run.pk)


@admin_required
def campaign_judges(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = get_object_or_404(Campaign, pk=pk)
    runs = list(judge_run_list(campaign=campaign))
    shown = [
        {"run": run, "agreement": agreement_view(run)}
        for run in [r for r in runs if r.ratings_done][:CAMPAIGN_RUNS_SHOWN]
    ]
    context = {"campaign": campaign, "runs": runs, "shown": shown}
    return render(request, "judges/campaign_judges.html", context)
