from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def home(request: HttpRequest) -> HttpResponse:
    campaigns = request.user.campaigns.filter(is_active=True)
    return render(request, "annotation/home.html", {"campaigns": campaigns})
