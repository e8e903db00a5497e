"""The dataset browser and the upload page (admins only).

Pages work without JavaScript; htmx swaps the page of posts in place and polls an import's
progress.
"""

from django import forms
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse

from accounts.permissions import admin_required
from config.errors import ApplicationError
from generation.importers import FORMAT_CHOICES
from generation.models import Dataset, ImportJob
from generation.selectors.datasets import (
    dataset_get,
    datasets_with_counts,
    import_job_list,
    post_list,
    posts_with_items,
)
from generation.selectors.items import description_text
from generation.services.import_jobs import import_job_create

POSTS_PER_PAGE = 20


@admin_required
def dataset_list(request: HttpRequest) -> HttpResponse:
    return render(request, "generation/dataset_list.html", {"datasets": datasets_with_counts()})


def with_descriptions(posts) -> list:
    """Each post with `description`: the latest OK image description or caption, if any."""
    posts = list(posts)
    for post in posts:
        latest = post.descriptions[0] if post.descriptions else None
        post.description = description_text(latest.parsed) if latest else ""
    return posts


@admin_required
def dataset_detail(request: HttpRequest, dataset_id: int) -> HttpResponse:
    dataset = get_object_or_404(Dataset, pk=dataset_id)
    search = request.GET.get("q", "").strip()
    page = Paginator(post_list(dataset=dataset, search=search), POSTS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    context = {
        "dataset": dataset,
        "page": page,
        "posts": with_descriptions(posts_with_items(page.object_list)),
        "search": search,
    }
    if request.htmx and request.htmx.target == "posts":
        return render(request, "generation/_post_page.html", context)
    context["dataset"] = dataset_get(dataset_id=dataset.pk)  # with its counts
    return render(request, "generation/dataset_detail.html", context)


class ImportUploadForm(forms.Form):
    dataset = forms.CharField(max_length=200, help_text="A new name creates the dataset.")
    format = forms.ChoiceField(
        choices=[(name, name) for name in FORMAT_CHOICES],
        initial="auto",
        help_text="auto recognises the format from the content.",
    )
    file = forms.FileField(label="Posts file")
    images_zip = forms.FileField(
        label="Images (zip)", required=False, help_text="The images the file names, zipped."
    )


@admin_required
def import_new(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = ImportUploadForm(request.POST, request.FILES)
        if form.is_valid():
            try:
                job = import_job_create(
                    file=form.cleaned_data["file"],
                    images_zip=form.cleaned_data["images_zip"],
                    dataset_name=form.cleaned_data["dataset"],
                    format=form.cleaned_data["format"],
                    created_by=request.user,
                )
            except ApplicationError as exc:
                form.add_error(None, str(exc))
            else:
                return redirect("generation:import-detail", job_id=job.pk)
    else:
        form = ImportUploadForm(initial={"dataset": request.GET.get("dataset", "")})
    return render(request, "generation/import_form.html", {"form": form, "jobs": import_job_list()})


@admin_required
def import_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    job = get_object_or_404(ImportJob.objects.select_related("dataset"), pk=job_id)
    context = {
        "job": job,
        "finished": job.status in (ImportJob.Status.DONE, ImportJob.Status.FAILED),
        "progress_url": reverse("generation:import-detail", args=[job.pk]),
    }
    if request.htmx:
        return render(request, "generation/_import_progress.html", context)
    return render(request, "generation/import_detail.html", context)
