from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from relay.models import FINAL_STATUSES, RequestFile


class Command(BaseCommand):
    help = "Delete the stored input and result files of requests that ended more than DAYS days ago."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--older-than", type=float, required=True, metavar="DAYS")
        parser.add_argument("--dry-run", action="store_true", help="Say what would go, delete nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        days = options["older_than"]
        if days < 0:
            raise CommandError("--older-than takes a number of days, 0 or more.")
        cutoff = timezone.now() - timedelta(days=days)
        stale = RequestFile.objects.filter(request__status__in=FINAL_STATUSES, request__finished_at__lt=cutoff)
        count = size = 0
        for record in stale.iterator():
            count += 1
            size += record.size
            if not options["dry_run"]:
                record.file.delete(save=False)
                record.delete()
        verb = "Would delete" if options["dry_run"] else "Deleted"
        self.stdout.write(
            f"{verb} {count} file(s), {size} bytes, of requests that ended before {cutoff:%Y-%m-%d %H:%M} UTC."
        )
