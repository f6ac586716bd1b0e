from django.contrib import admin
from django.http import HttpRequest

from relay.models import AppLease, InferenceRequest, RequestFile


class RequestFileInline(admin.TabularInline):
    model = RequestFile
    extra = 0
    fields = ["role", "field", "name", "content_type", "size", "created_at"]
    readonly_fields = fields
    can_delete = False


@admin.register(InferenceRequest)
class InferenceRequestAdmin(admin.ModelAdmin):
    """Read-only: only relay.queue changes a request's state."""

    list_display = ["id", "space", "user", "status", "attempt", "created_at", "finished_at"]
    list_filter = ["status", "space"]
    search_fields = ["id", "user__username", "space__name"]
    readonly_fields = [f.name for f in InferenceRequest._meta.fields]
    inlines = [RequestFileInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(AppLease)
class AppLeaseAdmin(admin.ModelAdmin):
    list_display = ["space", "connection_id", "remote_addr", "connected_at", "expires_at", "released_at"]
    readonly_fields = [f.name for f in AppLease._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
