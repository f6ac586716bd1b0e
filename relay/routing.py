from channels.routing import URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from channels.sessions import SessionMiddlewareStack
from django.urls import path, re_path

from relay.consumers.app import AppConsumer
from relay.consumers.browser import NotFoundConsumer, RequestConsumer
from relay.consumers.space import SpaceConsumer

browser_urlpatterns = [
    path("ws/spaces/<slug:slug>/", SpaceConsumer.as_asgi()),
    path("ws/requests/<uuid:request_id>/", RequestConsumer.as_asgi()),
]

websocket_urlpatterns = [
    # Remote apps send no Origin header: this route is authenticated by the app token instead.
    path("ws/apps/", AppConsumer.as_asgi()),
    # Browser routes: only from an allowed origin (no cross-site WebSocket hijacking). The session is
    # attached lazily, but no `scope["user"]`: AuthMiddlewareStack would spend a database hop on it
    # for every socket. A space's status is public, and the request stream resolves the user in the
    # same database call that reads the request.
    re_path(r"^", AllowedHostsOriginValidator(SessionMiddlewareStack(URLRouter(browser_urlpatterns)))),
    re_path(r"^", NotFoundConsumer.as_asgi()),
]
