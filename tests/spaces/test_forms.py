"""The request form: built from a space's enabled features only."""

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import translation
from django.utils.datastructures import MultiValueDict

from spaces.forms import MAX_FILES, RequestForm
from spaces.models import Space


def space(**features: bool) -> Space:
    fields = {f"feature_{name}": on for name, on in features.items()}
    return Space(name="Test", slug="test", **fields)


def upload(name: str, content_type: str, data: bytes = b"data") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type=content_type)


def files(**uploads: Any) -> MultiValueDict:
    return MultiValueDict({name: value if isinstance(value, list) else [value] for name, value in uploads.items()})


def test_it_has_only_the_enabled_fields() -> None:
    assert list(RequestForm(space()).fields) == ["prompt"]
    assert list(RequestForm(space(prompt=False, audio=True)).fields) == ["audio"]
    everything = space(audio=True, video=True, files=True)
    assert list(RequestForm(everything).fields) == ["prompt", "audio", "video", "files"]


def test_it_posts_to_the_submit_url() -> None:
    form = RequestForm(space())
    assert form.helper.form_action == "/spaces/test/requests/"
    assert form.helper.form_method == "post"


def test_it_accepts_a_prompt() -> None:
    form = RequestForm(space(), data={"prompt": "a poem"})
    assert form.is_valid(), form.errors
    assert form.inputs_and_files() == ({"prompt": "a poem"}, [])


def test_it_refuses_an_empty_request() -> None:
    form = RequestForm(space(), data={"prompt": ""})
    assert not form.is_valid()
    assert form.non_field_errors() == ["Fill in at least one input."]


def test_it_refuses_an_input_of_a_disabled_feature() -> None:
    form = RequestForm(space(), data={"prompt": "hi"}, files=files(audio=upload("a.wav", "audio/wav")))
    assert not form.is_valid()
    assert "audio" in form.non_field_errors()[0]


def test_it_refuses_a_too_long_prompt() -> None:
    form = RequestForm(space(), data={"prompt": "x" * 20_001})
    assert not form.is_valid()
    assert "prompt" in form.errors


def test_it_accepts_audio_and_video_files() -> None:
    form = RequestForm(
        space(prompt=False, audio=True, video=True),
        data={},
        files=files(audio=upload("a.wav", "audio/wav"), video=upload("v.mp4", "video/mp4", b"12345")),
    )
    assert form.is_valid(), form.errors
    inputs, uploads = form.inputs_and_files()
    assert inputs == {}
    assert [u["field"] for u in uploads] == ["audio", "video"]
    assert form.total_upload_size() == 4 + 5


def test_it_refuses_an_audio_field_holding_something_else() -> None:
    form = RequestForm(space(prompt=False, audio=True), data={}, files=files(audio=upload("a.txt", "text/plain")))
    assert not form.is_valid()
    assert form.errors["audio"] == ["Choose an audio file."]


def test_it_refuses_a_video_field_holding_something_else() -> None:
    form = RequestForm(space(prompt=False, video=True), data={}, files=files(video=upload("v.wav", "audio/wav")))
    assert not form.is_valid()
    assert form.errors["video"] == ["Choose a video file."]


def test_it_accepts_several_files() -> None:
    form = RequestForm(
        space(prompt=False, files=True),
        data={},
        files=files(files=[upload("a.txt", "text/plain"), upload("b.pdf", "application/pdf")]),
    )
    assert form.is_valid(), form.errors
    assert [u["file"].name for u in form.inputs_and_files()[1]] == ["a.txt", "b.pdf"]


def test_it_refuses_too_many_files() -> None:
    many = [upload(f"{n}.txt", "text/plain") for n in range(MAX_FILES + 1)]
    form = RequestForm(space(prompt=False, files=True), data={}, files=files(files=many))
    assert not form.is_valid()
    assert form.errors["files"] == [f"At most {MAX_FILES} files."]


def test_it_refuses_a_file_kind_it_does_not_accept() -> None:
    form = RequestForm(space(prompt=False, files=True), data={}, files=files(files=upload("run.exe", "x/y")))
    assert not form.is_valid()
    assert form.errors["files"] == ["run.exe: this kind of file is not accepted."]


def test_it_translates_the_help_text_in_the_active_language() -> None:
    with translation.override("zh-hans"):
        form = RequestForm(space(files=True))
        assert form.fields["files"].help_text == "最多 10 个文件。"
    with translation.override("en"):
        assert RequestForm(space(files=True)).fields["files"].help_text == "Up to 10 files."


@pytest.mark.parametrize(
    "language, message", [("en", "Fill in at least one input."), ("zh-hans", "请至少填写一项输入。")]
)
def test_it_speaks_the_active_language(language: str, message: str) -> None:
    with translation.override(language):
        form = RequestForm(space(), data={"prompt": ""})
        assert not form.is_valid()
        assert form.non_field_errors() == [message]
