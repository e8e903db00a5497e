from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.permissions import admin_required
from generation.models import Dataset


@admin_required
def dataset_list(request: HttpRequest) -> HttpResponse:
    datasets = Dataset.objects.annotate(post_count=Count("posts"))
    return render(request, "generation/dataset_list.html", {"datasets": datasets})
