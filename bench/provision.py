"""Create the bench's spaces (through `setup_space --json`) and users; print one JSON line.

Run inside the hub's environment: `python -m bench.provision SPACES USERS PASSWORD`.
"""

import io
import json
import sys


def main() -> None:
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    spaces, users, password = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    out = []
    for i in range(spaces):
        buf = io.StringIO()
        call_command("setup_space", f"Bench {i:03d}", "--json", stdout=buf)
        out.append(json.loads(buf.getvalue()))
    User = get_user_model()
    first = User(username="bench-user-00")
    first.set_password(password)  # hashed once: PBKDF2 costs about half a second a user
    User.objects.bulk_create(
        [User(username=f"bench-user-{i:02d}", password=first.password) for i in range(users)],
        ignore_conflicts=True,
    )
    names = [f"bench-user-{i:02d}" for i in range(users)]
    print(json.dumps({"spaces": out, "users": names}))


if __name__ == "__main__":
    main()
