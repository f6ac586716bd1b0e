from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import path, reverse
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from spaces.models import Space


def hub_url(request: HttpRequest) -> str:
    return request.build_absolute_uri("/").rstrip("/")


def show_tokens(request: HttpRequest, modeladmin: admin.ModelAdmin, rotated: list[tuple[Space, str]]) -> HttpResponse:
    """The one page that ever shows a token in clear."""
    context = {
        **modeladmin.admin_site.each_context(request),
        "opts": modeladmin.model._meta,
        "title": _("New app tokens"),
        "rotated": [(space, token, space.connect_command(hub_url(request), token)) for space, token in rotated],
    }
    return render(request, "admin/spaces/space/token_rotated.html", context)


@admin.action(description=_("Create a new app token (the old one stops working)"), permissions=["change"])
def rotate_tokens(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Space]) -> HttpResponse:
    rotated = [(space, space.rotate_token()) for space in queryset]
    return show_tokens(request, modeladmin, rotated)


@admin.register(Space)
class SpaceAdmin(admin.ModelAdmin):
    list_display = [
        "display_title",
        "name",
        "is_active",
        "input_features",
        "timeout_seconds",
        "max_queue_size",
        "token_prefix",
    ]
    list_filter = ["is_active", "feature_prompt", "feature_audio", "feature_video", "feature_files"]
    search_fields = ["name", "title", "description"]
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = ["token_status", "created_at", "updated_at"]
    actions = [rotate_tokens]
    change_form_template = "admin/spaces/space/change_form.html"
    fieldsets = [
        (None, {"fields": ["name", "slug", "title", "description", "is_active"]}),
        (_("Input features"), {"fields": ["feature_prompt", "feature_audio", "feature_video", "feature_files"]}),
        (_("Limits"), {"fields": ["timeout_seconds", "max_queue_size", "max_upload_mb"]}),
        (_("App connection"), {"fields": ["token_status", "created_at", "updated_at"]}),
    ]

    @admin.display(description=_("title"), ordering="title")
    def display_title(self, obj: Space) -> str:
        return obj.display_title

    @admin.display(description=_("Input features"))
    def input_features(self, obj: Space) -> str:
        # One column instead of four boolean ones keeps the changelist readable; the filters stay per feature.
        return ", ".join(str(Space._meta.get_field(f"feature_{name}").verbose_name) for name in obj.enabled_features)

    @admin.display(description=_("app token"))
    def token_status(self, obj: Space) -> str:
        if not obj.has_token:
            return str(_("No token yet: use “Create a new app token” below."))
        return str(_("%(prefix)s… created %(when)s (only its hash is stored)")) % {
            "prefix": obj.token_prefix,
            "when": obj.token_created_at.strftime("%Y-%m-%d %H:%M UTC") if obj.token_created_at else "?",
        }

    def get_urls(self) -> list[Any]:
        return [
            path(
                "<int:object_id>/rotate-token/",
                self.admin_site.admin_view(require_POST(self.rotate_token_view)),
                name="spaces_space_rotate_token",
            ),
            *super().get_urls(),
        ]

    def rotate_token_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        space = get_object_or_404(Space, pk=object_id)
        if not self.has_change_permission(request, space):
            raise PermissionDenied
        return show_tokens(request, self, [(space, space.rotate_token())])

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Space | None = None,
    ) -> HttpResponse:
        # From the object, not the URL's object_id: that may be any text (admin answers it with a redirect).
        if obj is not None and obj.pk and self.has_change_permission(request, obj):
            context["rotate_url"] = reverse("admin:spaces_space_rotate_token", args=[obj.pk])
        return super().render_change_form(request, context, add, change, form_url, obj)
