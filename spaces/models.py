import shlex

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.dispatch import Signal
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify
from django.utils.translation import gettext_lazy as _

from spaces import tokens

FEATURES = ("prompt", "audio", "video", "files")

# Sent with `space` after a new app token replaced the old one (relay disconnects the old app).
token_rotated = Signal()


class SpaceQuerySet(models.QuerySet["Space"]):
    def active(self) -> "SpaceQuerySet":
        return self.filter(is_active=True)


class Space(models.Model):
    """One AI app's page. Its remote app registers with `name` and the app token."""

    name = models.CharField(
        _("name"),
        max_length=100,
        unique=True,
        help_text=_("The key a remote app registers with (--space)."),
    )
    slug = models.SlugField(_("slug"), max_length=100, unique=True, blank=True, help_text=_("Used in the page URL."))
    title = models.CharField(_("title"), max_length=200, blank=True)
    description = models.TextField(_("description"), blank=True)
    is_active = models.BooleanField(_("active"), default=True)

    feature_prompt = models.BooleanField(_("prompt"), default=True)
    feature_audio = models.BooleanField(_("audio"), default=False)
    feature_video = models.BooleanField(_("video"), default=False)
    feature_files = models.BooleanField(_("files"), default=False)

    timeout_seconds = models.PositiveIntegerField(
        _("timeout (seconds)"),
        default=120,
        validators=[MinValueValidator(1), MaxValueValidator(24 * 3600)],
        help_text=_("A request not finished this long after it was sent to the app times out."),
    )
    max_queue_size = models.PositiveIntegerField(
        _("queue limit"),
        default=50,
        validators=[MinValueValidator(1), MaxValueValidator(10_000)],
        help_text=_("Submissions are refused while this many requests wait."),
    )
    max_upload_mb = models.PositiveIntegerField(
        _("upload limit (MB)"),
        default=25,
        validators=[MinValueValidator(1), MaxValueValidator(1024)],
        help_text=_("The largest total upload of one request."),
    )

    token_prefix = models.CharField(_("token prefix"), max_length=20, blank=True, editable=False)
    token_hash = models.CharField(max_length=64, blank=True, editable=False)
    token_created_at = models.DateTimeField(_("token created"), null=True, blank=True, editable=False)

    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    objects = SpaceQuerySet.as_manager()

    class Meta:
        ordering = ["title", "name"]
        verbose_name = _("space")
        verbose_name_plural = _("spaces")

    def __str__(self) -> str:
        return self.display_title

    def save(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        if not self.slug:
            self.slug = self._free_slug(slugify(self.name)[:90] or "space")
        super().save(*args, **kwargs)

    def get_absolute_url(self) -> str:
        return reverse("spaces:detail", args=[self.slug])

    def clean(self) -> None:
        if not any(self.features.values()):
            raise ValidationError(_("Enable at least one input feature: a space without inputs cannot take requests."))

    def _free_slug(self, base: str) -> str:
        slug, n = base, 1
        while Space.objects.filter(slug=slug).exclude(pk=self.pk).exists():
            n += 1
            slug = f"{base}-{n}"
        return slug

    @property
    def display_title(self) -> str:
        return self.title or self.name

    @property
    def features(self) -> dict[str, bool]:
        return {name: getattr(self, f"feature_{name}") for name in FEATURES}

    @property
    def enabled_features(self) -> list[str]:
        return [name for name, on in self.features.items() if on]

    @property
    def has_token(self) -> bool:
        return bool(self.token_hash)

    def rotate_token(self) -> str:
        """Make a new app token, store its hash, and return it (the only time it is seen)."""
        token = tokens.generate_token()
        self.token_hash = tokens.hash_token(token)
        self.token_prefix = tokens.display_prefix(token)
        self.token_created_at = timezone.now()
        self.save(update_fields=["token_hash", "token_prefix", "token_created_at", "updated_at"])
        token_rotated.send(sender=Space, space=self)
        return token

    def check_token(self, token: str) -> bool:
        return tokens.token_matches(token, self.token_hash)

    def connect_command(self, hub_url: str, token: str) -> str:
        # "Name" reads best; a name with shell characters gets full shell quoting instead.
        safe = all(ch.isalnum() or ch in " _.-" for ch in self.name)
        space = f'"{self.name}"' if safe else shlex.quote(self.name)
        return f"python -m relay.client --hub {shlex.quote(hub_url)} --space {space} --token {token}"
