from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularJSONAPIView,
    SpectacularRedocView,
    SpectacularSwaggerView,
)

import wallet_project.core.converters  # noqa: F401 - registers the <id:...> converter
from events import views as events_views
from wallet_project.core import views as core_views
from wallet_project.core.metrics import metrics_view

urlpatterns = [
    path("health", core_views.health, name="health"),
    path("ready", events_views.ready, name="ready"),
    path("metrics", metrics_view, name="metrics"),
    path("", include("accounts.api.urls")),
    path("", include("currencies.api.urls")),
    path("", include("wallets.api.urls")),
    path("", include("transactions.api.urls")),
    path("", include("holds.api.urls")),
    path("", include("audit.api.urls")),
    path("", include("webhooks.api.urls")),
    path("openapi.json", SpectacularJSONAPIView.as_view(), name="schema"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema-alias"),
    path("swagger/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    re_path(r"^swagger/index\.html$", SpectacularSwaggerView.as_view(url_name="schema")),
    path("redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    path("api-auth/", include("rest_framework.urls")),
    path("admin/", admin.site.urls),
    path("", RedirectView.as_view(url="/swagger/", permanent=False)),
    # Browsers ask every HTML page (admin, browsable API) for one; a 404 shows as a console error.
    path("favicon.ico", RedirectView.as_view(url=static("drf_spectacular_sidecar/swagger-ui-dist/favicon-32x32.png"))),
    # Unmatched paths answer in the error envelope, in DEBUG too (Django's handler404 is DEBUG-off only).
    re_path(r"^(?!static/).*$", core_views.not_found),
]

handler400 = "wallet_project.core.errors.handler400"
handler403 = "wallet_project.core.errors.handler403"
handler404 = "wallet_project.core.errors.handler404"
handler500 = "wallet_project.core.errors.handler500"
