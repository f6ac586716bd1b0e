"""Django's HTTP side under ASGI, with the middleware chain run in one thread hop per request.

Django's ASGIHandler builds an async middleware chain: every `MiddlewareMixin` method then hops to a
worker thread on its own, about twenty hops per request, which a profile of the submit path measured
at 6 to 7 ms of CPU. The views are synchronous anyway, so this handler builds the chain as WSGI does
and runs it in one hop; an async-only middleware (ServeStatic) still gets its async call, adapted by
Django at that one boundary. Request parsing, body streaming and responses stay Django's own.
"""

from typing import Any

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.base import BaseHandler
from django.http import HttpRequest, HttpResponseBase


class HubHTTPHandler(ASGIHandler):
    def __init__(self) -> None:
        BaseHandler.__init__(self)
        self.load_middleware(is_async=False)

    async def get_response_async(self, request: HttpRequest) -> HttpResponseBase:
        # thread_sensitive: the request's own thread (Django's per-request context), where the
        # request_started/finished signals run too, so its database connection is returned in order.
        return await sync_to_async(self.get_response, thread_sensitive=True)(request)


def get_application() -> Any:
    """What `django.core.asgi.get_asgi_application` does, with the handler above."""
    import django

    django.setup(set_prefix=False)
    return HubHTTPHandler()
