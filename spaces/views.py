"""The list of spaces and the space page."""

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_safe

from spaces.forms import RequestForm
from spaces.models import Space

# Other apps add to the space page without this app importing them (relay adds live
# status and the visitor's requests): each provider returns extra template context.
SpacePageProvider = Callable[[HttpRequest, Space], dict[str, Any]]
space_page_providers: list[SpacePageProvider] = []


@require_safe
def space_list(request: HttpRequest) -> HttpResponse:
    spaces = Space.objects.active()
    return render(request, "spaces/space_list.html", {"spaces": spaces})


@require_safe
def space_detail(request: HttpRequest, slug: str) -> HttpResponse:
    space = get_object_or_404(Space.objects.active(), slug=slug)
    return render_space(request, space)


def render_space(
    request: HttpRequest,
    space: Space,
    form: RequestForm | None = None,
    error: str | None = None,
    status: int = 200,
) -> HttpResponse:
    context: dict[str, Any] = {
        "space": space,
        "form": form or RequestForm(space),
        "error": error,
    }
    for provider in space_page_providers:
        context.update(provider(request, space))
    return render(request, "spaces/space_detail.html", context, status=status)
