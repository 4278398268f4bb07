"""Each input kind on the wire, the data-URI encoding, and every check made before a request."""

from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from dashscope_embed import (
    DashScopeClient,
    Fused,
    Image,
    InvalidInputError,
    MultiImages,
    Video,
)
from dashscope_embed.emulator import Emulator
from dashscope_embed.multimodal._encode import sniff_format
from dashscope_embed.multimodal._inputs import DATA_URI_LIMIT

from .conftest import Shell, contents, make_png

PLUS = "tongyi-embedding-vision-plus"
SNAPSHOT = "tongyi-embedding-vision-plus-2026-03-06"


def data_uri(data: bytes, fmt: str = "png") -> str:
    return f"data:image/{fmt};base64,{base64.b64encode(data).decode()}"


def test_every_input_kind_on_the_wire(shell: Shell, emulator: Emulator, tmp_path: Path) -> None:
    """Text, URL, path, bytes, file object, PIL image, data URI, video and multi_images each
    become the documented contents item, in input order."""
    png = make_png("cat")
    path = tmp_path / "cat.png"
    path.write_bytes(png)
    pil = PILImage.new("RGB", (4, 4), (1, 2, 3))
    pil_png = io.BytesIO()
    pil.save(pil_png, format="PNG")
    inputs = [
        "a cat on a sofa",
        Image("https://img.test/cat.jpg"),
        Image(str(path)),
        Image(path),
        Image.from_bytes(png),
        Image(io.BytesIO(png)),
        Image(pil),
        Image(data_uri(png)),
        Video("https://video.test/cat.mp4"),
        MultiImages([path, "https://img.test/dog.png"]),
    ]
    res = shell.embed(inputs)
    assert contents(emulator) == [
        [
            {"text": "a cat on a sofa"},
            {"image": "https://img.test/cat.jpg"},
            {"image": data_uri(png)},  # path, Path, bytes, file object and data URI: one item
            {"image": data_uri(pil_png.getvalue())},
            {"video": "https://video.test/cat.mp4"},
            {"multi_images": [data_uri(png), "https://img.test/dog.png"]},
        ]
    ]
    assert res.types == ("text", *["image"] * 7, "video", "multi_images")
    assert res.embeddings.shape == (10, 1152)
    for same in (3, 4, 5, 7):  # the five forms of one PNG share the one vector sent
        np.testing.assert_array_equal(res.embeddings[same], res.embeddings[2])


def test_fused_item_on_the_wire(shell: Shell, emulator: Emulator) -> None:
    """A Fused item is one contents object holding several modality keys (one vector)."""
    png = make_png("cat")
    item = Fused(text="a cat", image=png, video="https://video.test/cat.mp4")
    res = shell.embed([item, "a dog"], model=SNAPSHOT)
    assert contents(emulator) == [
        [
            {"text": "a cat", "image": data_uri(png), "video": "https://video.test/cat.mp4"},
            {"text": "a dog"},
        ]
    ]
    assert res.types == ("fused", "text")


def test_parameters_reach_the_wire_only_when_set(shell: Shell, emulator: Emulator) -> None:
    """dimension, fps, instruct and enable_fusion are sent exactly as given, and nothing else."""
    shell.embed(["a"], model=PLUS)
    shell.embed(["a"], model=PLUS, dimension=256, fps=0.5)
    shell.embed(
        ["a", Image("https://img.test/cat.png")],
        model="qwen3-vl-embedding",
        instruct="Find the matching image.",
        enable_fusion=True,
        dimension=512,
    )
    bodies = [r.json for r in emulator.requests]
    assert [b["parameters"] for b in bodies] == [
        {},
        {"dimension": 256, "fps": 0.5},
        {"dimension": 512, "instruct": "Find the matching image.", "enable_fusion": True},
    ]
    assert [r.path for r in emulator.requests] == [
        "/api/v1/services/embeddings/multimodal-embedding/multimodal-embedding"
    ] * 3
    assert [b["model"] for b in bodies] == [PLUS, PLUS, "qwen3-vl-embedding"]


def test_options_that_change_nothing_stay_off_the_wire(shell: Shell, emulator: Emulator) -> None:
    """multimodal-embedding-v1's fixed dimension=1024 and enable_fusion=False on a model without
    fusion are accepted and not sent; enable_fusion=False is sent where fusion exists."""
    res = shell.embed(["a"], model="multimodal-embedding-v1", dimension=1024, enable_fusion=False)
    shell.embed(["a"], model="qwen3-vl-embedding", enable_fusion=False)
    assert [r.json["parameters"] for r in emulator.requests] == [{}, {"enable_fusion": False}]
    assert res.dimension == 1024


def test_a_text_naming_a_file_is_sent_as_text(
    shell: Shell, emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plain string is always a text, even when it names an existing file (unlike the SDK)."""
    (tmp_path / "notes.txt").write_text("secret notes")
    (tmp_path / "cat.png").write_bytes(make_png("cat"))
    monkeypatch.chdir(tmp_path)
    shell.embed(["notes.txt", "cat.png", str(tmp_path / "cat.png")])
    sent = contents(emulator)[0]
    assert sent == [{"text": "notes.txt"}, {"text": "cat.png"}, {"text": str(tmp_path / "cat.png")}]


def test_local_image_leaves_only_inline(shell: Shell, emulator: Emulator, tmp_path: Path) -> None:
    """A local image goes out only as a data URI: no request holds its path, and only the one
    embedding request is made (nothing is uploaded)."""
    secret_dir = tmp_path / "private-photos"
    secret_dir.mkdir()
    path = secret_dir / "holiday.png"
    png = make_png("beach")
    path.write_bytes(png)
    res = shell.embed([Image(path), Image(f"file://{path}")])
    assert len(emulator.requests) == 1
    request = emulator.requests[0]
    assert request.path.endswith("/multimodal-embedding")
    raw = json.dumps(request.json) + json.dumps(request.headers)
    assert "private-photos" not in raw
    assert "holiday" not in raw
    assert "oss" not in request.headers.get("x-dashscope-ossresourceresolve", "")
    assert contents(emulator)[0] == [{"image": data_uri(png)}]  # one image, sent once
    assert res.embeddings.shape[0] == 2


def test_jpeg_bytes_are_sniffed(shell: Shell, emulator: Emulator) -> None:
    """The data URI's format comes from the bytes' magic number, not from a guess."""
    buf = io.BytesIO()
    PILImage.new("RGB", (4, 4)).save(buf, format="JPEG")
    shell.embed([Image.from_bytes(buf.getvalue())])
    assert contents(emulator)[0][0]["image"].startswith("data:image/jpeg;base64,/9j/")


def test_file_object_position_is_kept(shell: Shell) -> None:
    """Reading a file object for an image leaves its position where it was."""
    raw = make_png("cat")

    class Stream(io.RawIOBase):
        def __init__(self) -> None:
            self.inner = io.BytesIO(raw)

        def readable(self) -> bool:
            return True

        def read(self, size: int = -1, /) -> bytes:
            return self.inner.read(size)

        def seek(self, pos: int, whence: int = 0, /) -> int:
            return self.inner.seek(pos, whence)

        def tell(self) -> int:
            return self.inner.tell()

    stream = Stream()
    res = shell.embed([Image(stream)])
    assert stream.tell() == 0
    assert res.types == ("image",)


def test_sniff_format_knows_the_common_formats() -> None:
    """Magic numbers name PNG, JPEG, BMP, WEBP, TIFF, ICO and GIF; anything else is None."""
    samples = {
        "png": b"\x89PNG\r\n\x1a\n....",
        "jpeg": b"\xff\xd8\xff\xe0",
        "bmp": b"BM....",
        "webp": b"RIFF\x00\x00\x00\x00WEBPVP8 ",
        "tiff": b"II*\x00",
        "ico": b"\x00\x00\x01\x00",
        "gif": b"GIF89a",
    }
    for fmt, head in samples.items():
        assert sniff_format(head) == fmt
    assert sniff_format(b"hello world") is None


# -- every check made before a request ------------------------------------------------------


def _big_png(size: int) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + bytes(size - 8)


@pytest.mark.parametrize(
    ("model", "inputs", "index", "rule", "says"),
    [
        (PLUS, ["ok", ""], 1, "empty_text", "empty"),
        (PLUS, ["ok", 3], 1, "not_an_input", "int is not an input"),
        (PLUS, ["ok", Image(b"not an image")], 1, "image_format", "format='png'"),
        (PLUS, [Image(make_png("x")), Image(b"GIF89a....")], 1, "image_format", "GIF"),
        (PLUS, ["ok", Image("https://img.test/a.webp")], 1, "image_format", "WEBP"),
        (PLUS, ["ok", Image("data:image/webp;base64,AAAA")], 1, "image_format", "WEBP"),
        (PLUS, [Image("data:text/plain;base64,AAAA")], 0, "data_uri", "data:image/{format}"),
        (PLUS, [Image("data:image/png;base64,@@@")], 0, "data_uri", "malformed"),
        (PLUS, ["a", "b", Image(_big_png(3 * 1024 * 1024 + 1))], 2, "image_size", "3 MiB"),
        (SNAPSHOT, [Image(_big_png(8 * 1024 * 1024))], 0, "image_size", "per data URI"),
        (PLUS, [Image("/no/such/dir/cat.png")], 0, "image_not_found", "does not exist"),
        (PLUS, [Image("oss://bucket/cat.png")], 0, "image_url", "oss://"),
        (PLUS, [Image(12)], 0, "not_an_image", "int"),  # type: ignore[arg-type]
        (PLUS, [Video("data:video/mp4;base64,AAAA")], 0, "video_url", "data URI"),
        (PLUS, [Video("/home/me/clip.mp4")], 0, "video_url", "http(s) URL"),
        (
            "qwen3-vl-embedding",
            [MultiImages(["https://a.test/1.png"])],
            0,
            "multi_images",
            "does not take multi_images",
        ),
        (
            PLUS,
            [MultiImages([f"https://a.test/{i}.png" for i in range(9)])],
            0,
            "multi_images",
            "1 to 8",
        ),
        (PLUS, [Fused(text="a", image="https://a.test/1.png")], 0, "fused", "2026-03-06"),
        (
            "qwen3-vl-embedding",
            [Fused(text="a", image="https://a.test/1.png")],
            0,
            "fused",
            "enable_fusion=True",
        ),
        (SNAPSHOT, [Fused(text="only text")], 0, "fused", "at least two"),
        (
            "multimodal-embedding-v1",
            [MultiImages(["https://a.test/1.png"])],
            0,
            "multi_images",
            "multimodal-embedding-v1",
        ),
        (
            "qwen3-vl-embedding",
            ["a", MultiImages(["https://a.test/1.png"] * 2)],
            1,
            "multi_images",
            "qwen3-vl",
        ),
    ],
)
def test_bad_inputs_are_rejected_before_any_request(
    shell: Shell,
    emulator: Emulator,
    model: str,
    inputs: list[object],
    index: int,
    rule: str,
    says: str,
) -> None:
    """Each bad input raises InvalidInputError naming its index, the rule and the limit, and
    nothing is sent."""
    with pytest.raises(InvalidInputError) as info:
        shell.embed(inputs, model=model)
    assert info.value.index == index
    assert info.value.rule == rule
    assert f"input {index}" in str(info.value)
    assert says in str(info.value)
    assert emulator.requests == []


def test_data_uri_cap_is_the_documented_ten_mib() -> None:
    """The client's data-URI cap is the service's 10485760 bytes."""
    assert DATA_URI_LIMIT == 10485760


@pytest.mark.parametrize(
    ("kwargs", "rule", "says"),
    [
        ({"model": "text-embedding-v4"}, "model", "is a text model"),
        ({"dimension": 100}, "dimension", "allowed: 1152, 1024"),
        ({"model": "multimodal-embedding-v1", "dimension": 512}, "dimension", "fixed dimension"),
        ({"fps": 1.5}, "fps", "[0, 1]"),
        ({"fps": "fast"}, "fps", "number"),
        ({"instruct": "find it"}, "instruct", "qwen3-vl-embedding"),
        ({"model": "qwen3-vl-embedding", "instruct": "  "}, "instruct", "non-empty"),
        ({"enable_fusion": True}, "enable_fusion", "qwen3-vl-embedding only"),
        ({"enable_fusion": "yes"}, "enable_fusion", "bool"),
        ({"max_batch_size": 0}, "max_batch_size", ">= 1"),
    ],
)
def test_bad_options_are_rejected_before_any_request(
    shell: Shell, emulator: Emulator, kwargs: dict[str, object], rule: str, says: str
) -> None:
    """Each option the model cannot take raises InvalidInputError naming it; nothing is sent."""
    with pytest.raises(InvalidInputError) as info:
        shell.embed(["a"], **kwargs)
    assert info.value.rule == rule
    assert says in str(info.value)
    assert emulator.requests == []


def test_a_single_input_must_be_wrapped(shell: Shell) -> None:
    """A bare string or a bare Image is refused (a list is required), naming the fix."""
    for bad in ("a cat", Image("https://img.test/cat.png")):
        with pytest.raises(InvalidInputError, match=r"wrap it as \[item\]"):
            shell.embed(bad)


def test_fusion_must_fit_one_request(shell: Shell, emulator: Emulator) -> None:
    """enable_fusion=True with more images than one request takes is refused before sending."""
    images = [Image(f"https://img.test/{i}.png") for i in range(6)]
    with pytest.raises(InvalidInputError, match=r"6 images \(limit 5\)"):
        shell.embed(images, model="qwen3-vl-embedding", enable_fusion=True)
    assert emulator.requests == []


def test_region_check_names_beijing(emulator: Emulator) -> None:
    """multimodal-embedding-v1 on an international client fails naming Beijing and the models
    served there; an explicit base_url skips the region check."""
    intl = DashScopeClient("sk-test-0000", region="intl")
    with pytest.raises(InvalidInputError) as info:
        intl.embed_multimodal(["a"], model="multimodal-embedding-v1")
    message = str(info.value)
    assert info.value.rule == "region"
    assert "only in cn-beijing" in message
    assert "'ap-southeast-1'" in message
    assert "tongyi-embedding-vision-plus" in message
    assert intl.embed_multimodal([], model=PLUS).embeddings.shape == (0, 1152)
    assert intl.config.region == "ap-southeast-1"
    explicit = DashScopeClient("sk-test-0000", base_url="http://emulator.test")
    assert explicit.config.region is None


def test_empty_list_sends_nothing(shell: Shell, emulator: Emulator) -> None:
    """An empty input list returns an empty result of the model's dimension and sends nothing."""
    res = shell.embed([], dimension=256)
    assert res.embeddings.shape == (0, 256)
    assert emulator.requests == []


def test_pil_image_with_alpha_and_jpeg_target(shell: Shell, emulator: Emulator) -> None:
    """A PIL image is encoded as PNG by default, or in the format asked for (RGBA → RGB JPEG)."""
    rgba = PILImage.new("RGBA", (4, 4), (1, 2, 3, 4))
    shell.embed([Image(rgba), Image(rgba, format="jpeg")])
    sent = [c["image"] for c in contents(emulator)[0]]
    assert sent[0].startswith("data:image/png;base64,")
    assert sent[1].startswith("data:image/jpeg;base64,")
    decoded = PILImage.open(io.BytesIO(base64.b64decode(sent[0].split(",", 1)[1])))
    assert decoded.mode == "RGBA"
    assert np.asarray(decoded)[0, 0].tolist() == [1, 2, 3, 4]


def test_pathlike_and_home_paths(
    shell: Shell, emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Image.from_path and '~' paths read the local file."""
    monkeypatch.setenv("HOME", str(tmp_path))
    png = make_png("cat")
    (tmp_path / "cat.png").write_bytes(png)
    res = shell.embed([Image.from_path(tmp_path / "cat.png"), Image("~" + os.sep + "cat.png")])
    assert contents(emulator)[0] == [{"image": data_uri(png)}]  # one image, sent once
    assert res.embeddings.shape[0] == 2
