from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import path, re_path

from relay.consumers.app import AppConsumer
from relay.consumers.browser import NotFoundConsumer, RequestConsumer, SpaceConsumer

browser_urlpatterns = [
    path("ws/spaces/<slug:slug>/", SpaceConsumer.as_asgi()),
    path("ws/requests/<uuid:request_id>/", RequestConsumer.as_asgi()),
]

websocket_urlpatterns = [
    # Remote apps send no Origin header: this route is authenticated by the app token instead.
    path("ws/apps/", AppConsumer.as_asgi()),
    # Browser routes: only from an allowed origin (no cross-site WebSocket hijacking).
    re_path(r"^", AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(browser_urlpatterns)))),
    re_path(r"^", NotFoundConsumer.as_asgi()),
]
