import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser

from spaces.models import Space

DEMO_USER = "admin"


class Command(BaseCommand):
    help = "Create the demo staff user and the Echo space, once; print what to do next."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--hub", default="http://127.0.0.1:8000")

    def handle(self, *args: Any, **options: Any) -> None:
        hub = options["hub"]
        User = get_user_model()
        if not User.objects.filter(username=DEMO_USER).exists():
            password = secrets.token_urlsafe(12)
            User.objects.create_superuser(DEMO_USER, "", password)
            self.stdout.write(f"Staff user: {DEMO_USER} / {password}   (shown once; change it in the admin)")
        else:
            self.stdout.write(f"Staff user {DEMO_USER} exists (reset its password: manage.py changepassword admin).")
        space, created = Space.objects.get_or_create(
            name="Echo",
            defaults={
                "title": "Echo",
                "description": "A demo space: the mock app echoes your prompt back, word by word.",
                "feature_prompt": True,
            },
        )
        if created or not space.has_token:
            token = space.rotate_token()
            self.stdout.write(f"Space Echo: {hub}/spaces/{space.slug}/  app token (shown once): {token}")
            self.stdout.write("Connect the mock app (in another terminal):")
            self.stdout.write(f"  make mock-app SPACE=Echo TOKEN={token}")
            self.stdout.write(f"  or: .venv/bin/{space.connect_command(hub, token)}")
        else:
            self.stdout.write(
                f"Space Echo exists: {hub}/spaces/{space.slug}/. Its token was shown when it was made; "
                "for a new one run: make token SPACE=Echo"
            )
