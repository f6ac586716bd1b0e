import json
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from spaces.models import FEATURES, Space


def parse_features(raw: str) -> dict[str, bool]:
    names = [n.strip() for n in raw.split(",") if n.strip()]
    unknown = [n for n in names if n not in FEATURES]
    if unknown:
        raise CommandError(f"Unknown feature(s): {', '.join(unknown)}. Choose from: {', '.join(FEATURES)}.")
    return {name: name in names for name in FEATURES}


class Command(BaseCommand):
    help = "Create or update a space, make a new app token (the old one stops working) and print it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="The space's name, the key its app registers with.")
        parser.add_argument("--title", help="The title shown on the pages.")
        parser.add_argument("--features", help=f"Comma-separated, from: {','.join(FEATURES)}.")
        parser.add_argument("--timeout", type=int, help="Seconds before a running request times out.")
        parser.add_argument("--hub", default="http://127.0.0.1:8000", help="The hub URL shown in the command.")
        parser.add_argument("--json", action="store_true", help="Print one JSON object and nothing else.")

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["name"].strip()
        if not name or len(name) > 100:
            raise CommandError("The name must be 1 to 100 characters.")
        if options["timeout"] is not None and not 1 <= options["timeout"] <= 24 * 3600:
            raise CommandError("--timeout must be between 1 and 86400 seconds.")
        features = parse_features(options["features"]) if options["features"] is not None else None
        # Check everything before writing: a refused command leaves no half-made space behind.
        space = Space.objects.filter(name=name).first() or Space(name=name)
        created = space.pk is None
        if options["title"] is not None:
            space.title = options["title"]
        for feature, on in (features or {}).items():
            setattr(space, f"feature_{feature}", on)
        if options["timeout"] is not None:
            space.timeout_seconds = options["timeout"]
        try:
            space.full_clean()
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        space.save()
        token = space.rotate_token()
        if options["json"]:
            payload = {
                "name": space.name,
                "slug": space.slug,
                "token": token,
                "features": space.features,
                "timeout_seconds": space.timeout_seconds,
            }
            self.stdout.write(json.dumps(payload))
            return
        self.stdout.write(f"{'Created' if created else 'Updated'} space {space.name!r} (/spaces/{space.slug}/).")
        self.stdout.write(f"App token (shown once, only its hash is stored): {token}")
        self.stdout.write("Connect the mock app with:")
        self.stdout.write(f"  {space.connect_command(options['hub'], token)}")
