"""The site's URLs and error handlers, plus pages that fail, for the error page tests."""

from django.urls import path

from config import urls as site


def fail(request):
    raise RuntimeError("a bug in a view")


handler400 = site.handler400
handler403 = site.handler403
handler404 = site.handler404
handler500 = site.handler500

urlpatterns = [path("fail/", fail), path("api/fail/", fail), *site.urlpatterns]
