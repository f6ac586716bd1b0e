import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from relay import queue
from relay.events import publish_sync


class Command(BaseCommand):
    help = "Requeue requests of dead app connections, time out overdue ones, fail abandoned queues."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--loop", action="store_true", help="Sweep every --interval seconds until stopped.")
        parser.add_argument("--interval", type=float, default=5.0)

    def handle(self, *args: Any, **options: Any) -> None:
        while True:
            outcome = queue.sweep()
            publish_sync(outcome)
            changed = sum(1 for _group, event in outcome.group_events if event["type"] == "request.event")
            self.stdout.write(f"sweep: {changed} request(s) changed")
            if not options["loop"]:
                return
            time.sleep(options["interval"])
