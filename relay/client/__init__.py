"""The Python client for SpaceHub remote apps. It needs only `websockets`, never Django.

    from relay.client import App

    app = App(hub="https://hub.example", space="Echo", token="sh_...")

    @app.handler
    async def predict(request):
        await request.progress(0.3, "loading")
        return {"text": "...", "files": [("out.png", png_bytes, "image/png")]}

    app.run()

See docs/client.md.
"""

from relay.client.app import VERSION as __version__
from relay.client.app import App
from relay.client.backoff import Backoff
from relay.client.errors import ClientError, CredentialsRefused, RequestCancelled, ResultTooLarge
from relay.client.request import Request, SyncRequest
from relay.client.runner import run_apps, serve_apps

__all__ = [
    "App",
    "Backoff",
    "ClientError",
    "CredentialsRefused",
    "Request",
    "RequestCancelled",
    "ResultTooLarge",
    "SyncRequest",
    "__version__",
    "run_apps",
    "serve_apps",
]
