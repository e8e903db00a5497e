from django.urls import path

from generation import views

app_name = "generation"

urlpatterns = [
    path("datasets/", views.dataset_list, name="dataset-list"),
]
