from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class RelayConfig(AppConfig):
    name = "relay"
    verbose_name = _("Relay")

    def ready(self) -> None:
        from relay.page import space_page_context
        from relay.signals import revoke_app
        from spaces.models import token_rotated
        from spaces.views import space_page_providers

        token_rotated.connect(revoke_app, dispatch_uid="relay.revoke_app")

        if space_page_context not in space_page_providers:
            space_page_providers.append(space_page_context)
