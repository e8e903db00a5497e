from django.urls import path

from generation.views import datasets

app_name = "generation"

urlpatterns = [
    path("datasets/", datasets.dataset_list, name="dataset-list"),
]
