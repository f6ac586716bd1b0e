"""The ASGI application: `daphne spacehub.asgi:application`."""

import os

from spacehub.http import get_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spacehub.settings")
django_asgi_app = get_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402 - needs Django set up

from relay.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter({"http": django_asgi_app, "websocket": URLRouter(websocket_urlpatterns)})
