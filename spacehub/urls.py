from django.contrib import admin
from django.urls import include, path

from relay import metrics

admin.site.site_header = "SpaceHub"
admin.site.site_title = "SpaceHub"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("metrics", metrics.metrics, name="metrics"),
    path("", include("relay.urls")),
    path("", include("spaces.urls")),
]
