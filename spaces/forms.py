"""The request form, built from a space's enabled features."""

from pathlib import PurePosixPath
from typing import Any

from crispy_forms.helper import FormHelper
from crispy_forms.layout import Submit
from django import forms
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from spaces.models import FEATURES, Space

MAX_PROMPT_CHARS = 20_000
MAX_FILES = 10
ALLOWED_FILE_EXTENSIONS = (  # noqa: SIM905 - easier to read and edit as one string
    ".txt .md .csv .tsv .json .jsonl .pdf .png .jpg .jpeg .gif .webp .bmp .tif .tiff "
    ".wav .mp3 .ogg .flac .m4a .mp4 .webm .mov .mkv .zip .gz .tar .npy .npz .xml .html .yaml .yml"
).split()


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    widget = MultipleFileInput

    def clean(self, data: Any, initial: Any = None) -> list[Any]:
        single = super().clean
        if isinstance(data, list | tuple):
            return [single(item, initial) for item in data if item]
        return [single(data, initial)] if data else []


class RequestForm(forms.Form):
    prompt = forms.CharField(
        label=_("Prompt"),
        max_length=MAX_PROMPT_CHARS,
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "placeholder": _("What should the app do?")}),
    )
    audio = forms.FileField(
        label=_("Audio"), required=False, widget=forms.ClearableFileInput(attrs={"accept": "audio/*"})
    )
    video = forms.FileField(
        label=_("Video"), required=False, widget=forms.ClearableFileInput(attrs={"accept": "video/*"})
    )
    files = MultipleFileField(
        label=_("Files"),
        required=False,
        widget=MultipleFileInput(attrs={"accept": ",".join(ALLOWED_FILE_EXTENSIONS)}),
    )

    def __init__(self, space: Space, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.space = space
        self.disabled_inputs = [name for name in FEATURES if not space.features[name] and self._submitted(name)]
        for name in FEATURES:
            if not space.features[name]:
                del self.fields[name]
        if "files" in self.fields:
            # Formatted here, in the request's language (at import time it would stay English).
            self.fields["files"].help_text = _("Up to %(count)s files.") % {"count": MAX_FILES}
        self.helper = FormHelper()
        self.helper.form_action = reverse("relay:submit", args=[space.slug])
        self.helper.form_method = "post"
        self.helper.form_id = "request-form"
        self.helper.attrs = {"enctype": "multipart/form-data", "data-space": space.slug}
        self.helper.add_input(Submit("submit", _("Submit"), css_id="submit-button"))

    def _submitted(self, name: str) -> bool:
        if self.files and self.files.get(name):
            return True
        return bool(self.data and self.data.get(name))

    def clean_audio(self) -> Any:
        return self._check_type(self.cleaned_data.get("audio"), "audio/", _("Choose an audio file."))

    def clean_video(self) -> Any:
        return self._check_type(self.cleaned_data.get("video"), "video/", _("Choose a video file."))

    def clean_files(self) -> list[Any]:
        files = self.cleaned_data.get("files") or []
        if len(files) > MAX_FILES:
            raise forms.ValidationError(_("At most %(count)s files.") % {"count": MAX_FILES})
        for upload in files:
            if PurePosixPath(upload.name or "").suffix.lower() not in ALLOWED_FILE_EXTENSIONS:
                raise forms.ValidationError(_("%(name)s: this kind of file is not accepted.") % {"name": upload.name})
        return files

    def _check_type(self, upload: Any, prefix: str, message: str) -> Any:
        if upload and not (upload.content_type or "").startswith(prefix):
            raise forms.ValidationError(message)
        return upload

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.disabled_inputs:
            raise forms.ValidationError(
                _("This space does not take: %(names)s.") % {"names": ", ".join(self.disabled_inputs)}
            )
        if not any(data.get(name) for name in self.fields):
            raise forms.ValidationError(_("Fill in at least one input."))
        return data

    def total_upload_size(self) -> int:
        total = 0
        for name in ("audio", "video"):
            if self.cleaned_data.get(name):
                total += self.cleaned_data[name].size
        for upload in self.cleaned_data.get("files") or []:
            total += upload.size
        return total

    def inputs_and_files(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        inputs: dict[str, Any] = {}
        if self.cleaned_data.get("prompt"):
            inputs["prompt"] = self.cleaned_data["prompt"]
        uploads = [
            {"field": name, "file": self.cleaned_data[name]}
            for name in ("audio", "video")
            if self.cleaned_data.get(name)
        ]
        uploads += [{"field": "files", "file": f} for f in self.cleaned_data.get("files") or []]
        return inputs, uploads
