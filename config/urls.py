from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from accounts import views as account_views
from config.media import media_file

api_patterns = [
    path("", include("accounts.api_urls")),
    path("", include("generation.api_urls")),
    path("", include("annotation.api_urls")),
    path("", include("evaluation.api_urls")),
    path("", include("judges.api_urls")),
    path("", include("critics.api_urls")),
    path("", include("students.api_urls")),
    path("", include("comparisons.api_urls")),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's settings as a script file: the CSP refuses inline scripts.
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
]

urlpatterns = [
    path("", account_views.home, name="home"),
    path("healthz", account_views.healthz, name="healthz"),
    path("accounts/", include("accounts.urls")),
    path("admin/", admin.site.urls),
    # The API before the pages: an API call is resolved without trying every page's pattern.
    path("api/", include(api_patterns)),
    path("", include("generation.urls")),
    path("", include("annotation.urls")),
    path("", include("evaluation.urls")),
    path("", include("students.urls")),
    path("", include("comparisons.urls")),
    path("", include("judges.urls")),
    path("", include("critics.urls")),
    # Files under MEDIA_ROOT, to whom they belong (config/media.py).
    path(f"{settings.MEDIA_URL.strip('/')}/<path:path>", media_file),
]

handler400 = "config.errors.bad_request"
handler403 = "config.error_pages.permission_denied"
handler404 = "config.error_pages.not_found"
handler500 = "config.error_pages.server_error"
