from django.urls import path

import config.converters  # noqa: F401  (registers <id:...>)
from critics import views

app_name = "critics"

urlpatterns = [
    path("critics/", views.critic_list, name="critic-list"),
    path("critics/<id:pk>/", views.critic_detail, name="critic-detail"),
    path("critics/<id:pk>/score/", views.critic_score_view, name="critic-score"),
    path("critics/<id:pk>/order-tasks/", views.critic_order_tasks_view, name="critic-order-tasks"),
]
