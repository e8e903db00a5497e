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
from generation.extensions import import_split, split_names
from generation.importers import FORMAT_CHOICES, FORMATS, FormatNotRecognised
from generation.importers.examples import EXAMPLES
from generation.models import Dataset, ImportJob
from generation.selectors.datasets import (
    dataset_get,
    datasets_with_counts,
    import_job_list,
    post_list,
    posts_with_items,
)
from generation.selectors.items import description_text
from generation.services.import_jobs import import_job_create, import_job_images_line

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
    """An existing dataset from the list, or a new one named on purpose: a typo in a name never
    makes a dataset by itself."""

    dataset = forms.ModelChoiceField(
        queryset=Dataset.objects.order_by("name"),
        required=False,
        empty_label="— a new dataset, named below —",
        help_text="The dataset the posts go into.",
    )
    new_dataset = forms.CharField(
        max_length=200,
        required=False,
        label="New dataset",
        help_text="Only to create a dataset: its name.",
    )
    format = forms.ChoiceField(
        choices=[(name, name) for name in FORMAT_CHOICES],
        initial="auto",
        help_text="auto recognises the format from the content.",
    )
    file = forms.FileField(label="Posts file")
    images_zip = forms.FileField(
        label="Images (zip)", required=False, help_text="The images the file names, zipped."
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if import_split() is not None:  # an app offers splits (students)
            self.fields["split"] = forms.CharField(
                max_length=50,
                required=False,
                label="Split",
                help_text="Optional: the split the file's posts belong to (train, dev, test…), "
                "as the source ships them; kept, never drawn again.",
                widget=forms.TextInput(attrs={"list": "split-names", "autocomplete": "off"}),
            )

    def clean(self) -> dict:
        data = super().clean()
        existing, new = data.get("dataset"), (data.get("new_dataset") or "").strip()
        data["new_dataset"] = new
        if existing and new:
            self.add_error(
                "new_dataset",
                f"Choose the dataset {existing.name} in the list or name a new one, not both.",
            )
        elif not existing and not new and "dataset" not in self.errors:
            self.add_error("dataset", "Choose a dataset, or name a new one in “New dataset”.")
        return data


def _upload_refused(form: ImportUploadForm, exc: ApplicationError, *, new: bool) -> None:
    """The service's refusal, in the form's words, beside the field it concerns."""
    cause = exc.__cause__
    if isinstance(cause, FormatNotRecognised):
        form.add_error(
            "format",
            f"Cannot tell the format of {cause.name} from its content. Choose the format in the "
            f"Format menu ({', '.join(FORMATS)}; an example of each is below it), then choose "
            "the file again.",
        )
    elif exc.field == "dataset" and new:
        form.add_error("new_dataset", f"{exc.message} Choose it in the Dataset list.")
    elif exc.field == "dataset":
        form.add_error("dataset", exc.message)
    elif exc.field in form.fields:
        form.add_error(exc.field, exc.message)
    else:
        form.add_error(None, exc.message)


@admin_required
def import_new(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = ImportUploadForm(request.POST, request.FILES)
        if form.is_valid():
            new = form.cleaned_data["new_dataset"]
            try:
                job = import_job_create(
                    file=form.cleaned_data["file"],
                    images_zip=form.cleaned_data["images_zip"],
                    dataset_name=new or form.cleaned_data["dataset"].name,
                    create_dataset=bool(new),
                    format=form.cleaned_data["format"],
                    created_by=request.user,
                    split=form.cleaned_data.get("split", ""),
                )
            except ApplicationError as exc:
                _upload_refused(form, exc, new=bool(new))
            else:
                return redirect("generation:import-detail", job_id=job.pk)
    else:
        chosen = Dataset.objects.filter(name=request.GET.get("dataset", "")).first()
        form = ImportUploadForm(initial={"dataset": chosen})
    context = {
        "form": form,
        "jobs": import_job_list(),
        "examples": EXAMPLES,
        # The Split field's suggestions: the usual names and the chosen dataset's.
        "split_names": split_names(
            dataset=getattr(form, "cleaned_data", {}).get("dataset") or form.initial.get("dataset")
        ),
    }
    return render(request, "generation/import_form.html", context)


@admin_required
def import_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    job = get_object_or_404(ImportJob.objects.select_related("dataset"), pk=job_id)
    images, warnings = import_job_images_line(job)
    context = {
        "job": job,
        "images": images,
        "warnings": warnings,
        "finished": job.status in (ImportJob.Status.DONE, ImportJob.Status.FAILED),
        "progress_url": reverse("generation:import-detail", args=[job.pk]),
    }
    if request.htmx:
        return render(request, "generation/_import_progress.html", context)
    return render(request, "generation/import_detail.html", context)
