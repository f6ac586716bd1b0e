"""Render deploy/nginx.conf for one site: fill its @NAME@ placeholders and print the result.

    python3 deploy/render_nginx.py --server-name hub.example.org \\
        --upstream 127.0.0.1:8001 --upstream 127.0.0.1:8002 \\
        --static-root /srv/spacehub/static --media-root /srv/spacehub/media --max-upload-mb 25 \\
        > /etc/nginx/sites-available/spacehub

A line whose placeholder has several values is repeated once per value. Only the standard
library: it runs with the system's python3, outside the hub's virtualenv.
"""

import argparse
import re
import sys
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent / "nginx.conf"
PLACEHOLDER = re.compile(r"@([A-Z_]+)@")


def render(template: str, values: dict[str, list[str]]) -> str:
    """Fill every placeholder; a placeholder without a value is an error, and so is an unused value."""
    out: list[str] = []
    used: set[str] = set()
    for line in template.splitlines():
        names = set() if line.lstrip().startswith("#") else set(PLACEHOLDER.findall(line))
        missing = names - values.keys()
        if missing:
            raise ValueError(f"no value for {_names(missing)}")
        repeated = [name for name in names if len(values[name]) != 1]
        if len(repeated) > 1:
            raise ValueError(f"one line repeats for several placeholders: {line.strip()}")
        single = {name: values[name][0] for name in names if name not in repeated}
        if repeated:
            out.extend(_fill(line, {**single, repeated[0]: value}) for value in values[repeated[0]])
        else:
            out.append(_fill(line, single))
        used |= names
    unused = values.keys() - used
    if unused:
        raise ValueError(f"the template has no {_names(unused)}")
    return "\n".join(out) + "\n"


def _fill(line: str, mapping: dict[str, str]) -> str:
    return PLACEHOLDER.sub(lambda match: mapping[match.group(1)], line) if mapping else line


def _names(names: set[str]) -> str:
    return ", ".join(sorted(f"@{name}@" for name in names))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Render deploy/nginx.conf for one SpaceHub site.")
    p.add_argument("--server-name", required=True, help="the hub's host name (also in ALLOWED_HOSTS)")
    p.add_argument(
        "--upstream",
        action="append",
        required=True,
        help="a daphne process, repeatable: 127.0.0.1:8001 or unix:/run/spacehub/daphne-1.sock",
    )
    p.add_argument("--static-root", required=True, help="the hub's STATIC_ROOT")
    p.add_argument("--media-root", required=True, help="the hub's MEDIA_ROOT")
    p.add_argument("--max-upload-mb", type=int, default=25, help="the largest max_upload_mb of any space (default 25)")
    p.add_argument("--http-listen", action="append", help="plain-HTTP address, repeatable (default 80 and [::]:80)")
    p.add_argument("--https-listen", action="append", help="TLS address, repeatable (default 443 and [::]:443)")
    p.add_argument("--tls-cert", help="certificate chain (default: certbot's, /etc/letsencrypt/live/NAME/)")
    p.add_argument("--tls-key", help="certificate key (default: certbot's)")
    p.add_argument("--acme-root", default="/var/www/letsencrypt", help="certbot's webroot (/var/www/letsencrypt)")
    p.add_argument("--template", type=Path, default=TEMPLATE, help=argparse.SUPPRESS)
    return p


def values_from(args: argparse.Namespace) -> dict[str, list[str]]:
    live = f"/etc/letsencrypt/live/{args.server_name}"
    return {
        "UPSTREAM": args.upstream,
        "SERVER_NAME": [args.server_name],
        "HTTP_LISTEN": args.http_listen or ["80", "[::]:80"],
        "HTTPS_LISTEN": args.https_listen or ["443", "[::]:443"],
        "TLS_CERT": [args.tls_cert or f"{live}/fullchain.pem"],
        "TLS_KEY": [args.tls_key or f"{live}/privkey.pem"],
        "ACME_ROOT": [args.acme_root],
        "STATIC_ROOT": [str(args.static_root).rstrip("/")],
        "MEDIA_ROOT": [str(args.media_root).rstrip("/")],
        "MAX_BODY": [f"{args.max_upload_mb + 1}m"],
    }


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        sys.stdout.write(render(args.template.read_text(), values_from(args)))
    except ValueError as exc:
        print(f"render_nginx: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
