"""Tests for photonic.media.jpeg_exif: from a JPEG's first bytes it gives exactly the summary
that exifread and Pillow give (read_exif_summary without head), or None; it never raises."""

from __future__ import annotations

import io
import random
import struct
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from PIL import Image

from photonic.media.exif import read_exif_summary
from photonic.media.jpeg_exif import PILLOW_MAX_PIXELS, summary_from_jpeg_head
from photonic.models import ExifSummary
from tests.support.photos import make_jpeg, make_png, make_tiff, make_truncated_jpeg
from tests.support.pixels import smooth_scene

# The slow path warns about the hostile files here (Pillow's "Corrupt EXIF data"); expected.
QUIET = pytest.mark.filterwarnings("ignore::UserWarning")
HEAD_BYTES = 1 << 20  # what the hasher hands over: its first read block
ASCII, SHORT, LONG, RATIONAL, UNDEFINED = 2, 3, 4, 5, 7

Segment = tuple[int, bytes]  # (marker code, payload after the length field)
Entry = tuple[int, int, int, bytes | str]  # (tag, type, count, value or the IFD it points to)


# --- building JPEGs segment by segment -------------------------------------------------------


def pillow_jpeg(seed: int, *, width: int = 96, height: int = 64, mode: str = "RGB",
                **save: object) -> bytes:
    """A JPEG as Pillow writes it (JFIF APP0, no EXIF unless save carries one)."""
    image = smooth_scene(random.Random(seed), width, height).convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", **save)
    return buffer.getvalue()


def split_jpeg(data: bytes) -> tuple[list[Segment], bytes]:
    """The segments between SOI and SOS, and everything from SOS on."""
    segments, pos = [], 2
    while data[pos + 1] != 0xDA:
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        segments.append((data[pos + 1], data[pos + 4 : pos + 2 + length]))
        pos += 2 + length
    return segments, data[pos:]


def join_jpeg(segments: list[Segment], scan: bytes, *, fill_from: int = 99) -> bytes:
    """SOI, the segments, the scan; segments from index fill_from on get 0xFF fill bytes."""
    out = bytearray(b"\xff\xd8")
    for index, (code, payload) in enumerate(segments):
        out += b"\xff\xff\xff" if index >= fill_from else b""
        out += bytes([0xFF, code]) + struct.pack(">H", len(payload) + 2) + payload
    return bytes(out + scan)


def with_exif(tiff: bytes, *, seed: int = 1, keep_jfif: bool = False,
              before: Sequence[Segment] = (), after: Sequence[Segment] = (),
              **save: object) -> bytes:
    """A Pillow JPEG whose APP1 carries tiff; camera-like (EXIF first) unless keep_jfif."""
    segments, scan = split_jpeg(pillow_jpeg(seed, **save))
    jfif = [s for s in segments if s[0] == 0xE0] if keep_jfif else []
    rest = [s for s in segments if s[0] != 0xE0]
    return join_jpeg([*jfif, *before, (0xE1, b"Exif\x00\x00" + tiff), *after, *rest], scan)


def tiff_block(order: str, ifds: dict[str, list[Entry]],
               chain: tuple[str, ...] = ("ifd0",)) -> tuple[bytes, dict[str, int]]:
    """A TIFF block laid out as cameras do: header, IFDs (chained in chain order), values.

    Returns the block and each IFD's offset in it, for tests that aim at its fields.
    """
    offsets, at = {}, 8
    for name, entries in ifds.items():
        offsets[name] = at
        at += 2 + 12 * len(entries) + 4
    data = bytearray()
    out = bytearray((b"II*\x00" if order == "<" else b"MM\x00*") + struct.pack(order + "I", 8))
    for name, entries in ifds.items():
        out += struct.pack(order + "H", len(entries))
        for tag, kind, count, value in entries:
            raw = struct.pack(order + "I", offsets[value]) if isinstance(value, str) else value
            if len(raw) > 4:
                field = struct.pack(order + "I", at + len(data))
                data += raw + b"\x00" * (len(raw) % 2)
            else:
                field = raw.ljust(4, b"\x00")
            out += struct.pack(order + "HHI", tag, kind, count) + field
        following = chain[chain.index(name) + 1] if name in chain[:-1] else None
        out += struct.pack(order + "I", offsets[following] if following else 0)
    return bytes(out + data), offsets


def text(tag: int, value: str | bytes, count: int | None = None) -> Entry:
    raw = (value.encode() if isinstance(value, str) else value) + b"\x00"
    return tag, ASCII, len(raw) if count is None else count, raw


def num(order: str, tag: int, kind: int, *values: int) -> Entry:
    code = {SHORT: "H", LONG: "I", UNDEFINED: "B", 1: "B", 8: "h", 9: "i"}[kind]
    return tag, kind, len(values), struct.pack(f"{order}{len(values)}{code}", *values)


def ratio(order: str, tag: int, *pairs: tuple[int, int]) -> Entry:
    return tag, RATIONAL, len(pairs), b"".join(struct.pack(order + "II", *p) for p in pairs)


def camera_ifds(order: str, *, gps: bool = True, make: str | bytes = "NIKON CORPORATION",
                ifd0_extra: Sequence[Entry] = (), exif_extra: Sequence[Entry] = (),
                ) -> dict[str, list[Entry]]:
    """The IFDs of a camera JPEG: IFD0, Exif, GPS, Interop and a thumbnail IFD1."""
    ifd0 = [text(0x010F, make), text(0x0110, "NIKON Z 6_2"), num(order, 0x0112, SHORT, 6),
            ratio(order, 0x011A, (300, 1)), ratio(order, 0x011B, (300, 1)),
            num(order, 0x0128, SHORT, 2), text(0x0131, "Ver.01.10 "),
            text(0x0132, "2024:05:11 09:30:00"), (0x8769, LONG, 1, "exif"), *ifd0_extra]
    if gps:
        ifd0.append((0x8825, LONG, 1, "gps"))
    exif = [ratio(order, 0x829A, (1, 250)), ratio(order, 0x829D, (56, 10)),
            num(order, 0x8827, SHORT, 400), (0x9000, UNDEFINED, 4, b"0231"),
            text(0x9003, "2024:05:11 09:30:01"), text(0x9004, "2024:05:11 09:30:01"),
            text(0x9010, "+02:00"), text(0x9011, "+02:00"), text(0x9012, "+02:00"),
            text(0x9290, "12"), text(0x9291, "345"), text(0x9292, "3"),
            (0x927C, UNDEFINED, 300, bytes(range(256)) + bytes(44)),  # MakerNote
            (0x9286, UNDEFINED, 16, b"ASCII\x00\x00\x00hello!!!"),  # UserComment
            num(order, 0xA002, LONG, 6048), num(order, 0xA003, LONG, 4024),
            (0xA005, LONG, 1, "interop"), text(0xA434, "NIKKOR Z 24-70mm f/4 S"), *exif_extra]
    ifds = {"ifd0": sorted(ifd0, key=lambda e: e[0]), "exif": sorted(exif, key=lambda e: e[0]),
            "interop": [text(0x0001, "R98"), (0x0002, UNDEFINED, 4, b"0100")],
            "ifd1": [num(order, 0x0103, SHORT, 6), num(order, 0x0201, LONG, 0),
                     num(order, 0x0202, LONG, 0)]}
    if gps:
        ifds["gps"] = [(0x0000, 1, 4, b"\x02\x03\x00\x00"), text(0x0001, "N"),
                       ratio(order, 0x0002, (48, 1), (51, 1), (2904, 100)), text(0x0003, "E"),
                       ratio(order, 0x0004, (2, 1), (17, 1), (4020, 100))]
    return ifds


def camera_tiff(order: str, **kwargs: object) -> bytes:
    return tiff_block(order, camera_ifds(order, **kwargs), ("ifd0", "ifd1"))[0]  # type: ignore[arg-type]


# --- the corpus -------------------------------------------------------------------------------


def generator_photos(tmp: Path) -> list[Path]:
    """Photos from the project's generator: two bodies, zones, sub-seconds, lens, GPS, turns."""
    bodies = (("NIKON CORPORATION", "NIKON Z 6"), ("Canon", "Canon EOS R5"))
    zones = (timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30)), None)
    paths = []
    for seed in range(12):
        make, model = bodies[seed % 2]
        zone = zones[seed % 3]
        shot = datetime(2024, 5, 11 + seed, 9, seed, 7, tzinfo=zone)
        paths.append(make_jpeg(
            tmp / f"gen{seed}.jpg", seed=seed, width=64 + 8 * seed, height=48 + 4 * seed,
            capture_time=None if seed == 5 else shot, make=make, model=model,
            gps=(48.85 + seed, 2.29 - seed) if seed % 3 else None,
            extra_exif={0x0112: 1 + seed % 8},
            extra_exif_ifd={0xA434: "RF24-105mm F4 L IS USM", 0x9291: str(seed * 7)}
            if seed % 2 else {},
        ))
    return paths


def _icc(size: int, chunks: int) -> list[Segment]:
    body = random.Random(size).randbytes(size)
    step = -(-size // chunks)
    return [(0xE2, b"ICC_PROFILE\x00" + bytes([i + 1, chunks]) + body[i * step:(i + 1) * step])
            for i in range(chunks)]


def _photoshop(resolution_bytes: int = 16, tail: bytes = b"") -> bytes:
    resolution = struct.pack(">IHHIHH", 300 << 16, 1, 1, 300 << 16, 1, 1)[:resolution_bytes]
    iptc = b"\x1c\x02\x05\x00\x05Title"
    return (b"Photoshop 3.0\x00" + b"8BIM\x04\x04\x00\x00" + struct.pack(">I", len(iptc)) + iptc
            + b"8BIM\x03\xed\x00\x00" + struct.pack(">I", len(resolution)) + resolution + tail)


def _mpo(seed: int) -> bytes:
    frames = [smooth_scene(random.Random(seed + i), 80, 60) for i in range(2)]
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x010F] = "FUJIFILM"
    frames[0].save(buffer, "MPO", save_all=True, append_images=frames[1:], exif=exif)
    return buffer.getvalue()


def _pillow_exif(**tags: object) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0132] = "Canon", "Canon EOS R5", "2023:01:02 03:04:05"
    for key, value in tags.items():
        exif[int(key[1:], 16)] = value
    return exif


MM, II = ">", "<"
CRAFTED: dict[str, Callable[[], bytes]] = {
    "pillow-no-exif": lambda: pillow_jpeg(1),
    "pillow-exif-progressive": lambda: pillow_jpeg(2, progressive=True, exif=_pillow_exif()),
    "pillow-exif-optimized": lambda: pillow_jpeg(3, optimize=True, exif=_pillow_exif()),
    "pillow-exif-jfif-dpi": lambda: pillow_jpeg(4, dpi=(300, 300), exif=_pillow_exif()),
    "pillow-grayscale": lambda: pillow_jpeg(5, mode="L", exif=_pillow_exif(x0112=8)),
    "pillow-cmyk-adobe": lambda: pillow_jpeg(6, mode="CMYK", exif=_pillow_exif()),
    "pillow-restart-interval": lambda: pillow_jpeg(7, restart_marker_blocks=2),
    "pillow-comment-and-icc": lambda: pillow_jpeg(8, comment=b"hi", icc_profile=bytes(3000)),
    "pillow-mpo": lambda: _mpo(9),
    "camera-big-endian": lambda: with_exif(camera_tiff(MM)),
    "camera-little-endian": lambda: with_exif(camera_tiff(II)),
    "camera-no-gps": lambda: with_exif(camera_tiff(II, gps=False)),
    "jfif-then-exif": lambda: with_exif(camera_tiff(MM), keep_jfif=True),
    "jfif-dpi-then-exif": lambda: with_exif(camera_tiff(II), keep_jfif=True, dpi=(72, 72)),
    "icc-after-exif": lambda: with_exif(camera_tiff(II), after=_icc(70_000, 2)),
    "small-icc-before-exif": lambda: with_exif(camera_tiff(MM), before=_icc(1_000, 1)),
    # exifread searches 4000 bytes for the EXIF segment: it misses this one, and so must we.
    "large-icc-before-exif": lambda: with_exif(camera_tiff(II), keep_jfif=True, dpi=(72, 72),
                                               before=_icc(6_000, 1)),
    "xmp-photoshop-com-after-exif": lambda: with_exif(
        camera_tiff(MM), after=[(0xE1, b"http://ns.adobe.com/xap/1.0/\x00<x/>"),
                                (0xED, _photoshop()), (0xFE, b"a comment")]),
    "photoshop-short-resolution-info": lambda: with_exif(
        camera_tiff(II), after=[(0xED, _photoshop(resolution_bytes=10))]),
    "fill-bytes-after-exif": lambda: join_jpeg(*split_jpeg(with_exif(camera_tiff(II))),
                                               fill_from=1),
    "restart-and-eoi-markers-before-sof": lambda: with_exif(camera_tiff(II)).replace(
        b"\xff\xdb", b"\xff\xd0\xff\xd9\x00junk\xff\xdb", 1),
    "text-quirks": lambda: with_exif(camera_tiff(
        II, make=b"  Nikon\x00junk after the NUL",
        ifd0_extra=[text(0x0110, "  Z 6  ", count=40)],  # a second Model: exifread keeps it
        exif_extra=[text(0xA434, "L" * 300), text(0x9290, "x1")])),
    "odd-types": lambda: with_exif(camera_tiff(
        MM, ifd0_extra=[text(0x0112, "6"), num(MM, 0x0100, 8, -640), num(MM, 0x0101, 9, 480),
                        (0x0131, 11, 1, b"\x3f\x80\x00\x00"), (0x0999, 99, 1, b"")])),
    "ifd-chain-loop": lambda: with_exif(tiff_block(
        II, camera_ifds(II), ("ifd0", "ifd1", "ifd0"))[0]),
    "self-referencing-ifd1": lambda: with_exif(tiff_block(
        MM, camera_ifds(MM), ("ifd0", "ifd1", "ifd1"))[0]),
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("corpus")
    files = {p.stem: p for p in generator_photos(tmp)}
    for name, build in CRAFTED.items():
        files[name] = tmp / f"{name}.jpg"
        files[name].write_bytes(build())
    files["larger-than-head"] = make_jpeg(tmp / "big.jpg", seed=99, width=1600, height=1200,
                                          quality=100, capture_time=datetime(2024, 1, 2),
                                          gps=(1.5, 2.5))
    return files


CORPUS = [*(f"gen{seed}" for seed in range(12)), *sorted(CRAFTED), "larger-than-head"]


@pytest.mark.parametrize("name", CORPUS)
def test_fast_path_equals_exifread_and_pillow(corpus: dict[str, Path], name: str) -> None:
    """Generator photos and crafted JPEGs (MM/II, JFIF, ICC, fill bytes, MPO, progressive,
    odd tag types, IFD loops): the summary from the first MiB equals the slow path's."""
    path = corpus[name]
    fast = summary_from_jpeg_head(path.read_bytes()[:HEAD_BYTES])
    assert fast is not None, "declined"
    assert fast == read_exif_summary(path)


def test_corpus_has_a_file_larger_than_the_head(corpus: dict[str, Path]) -> None:
    """One photo is bigger than the block the hasher hands over, so only its head is parsed."""
    assert corpus["larger-than-head"].stat().st_size > HEAD_BYTES
    assert sorted(corpus) == sorted(CORPUS)


def test_corpus_exercises_what_it_claims(corpus: dict[str, Path]) -> None:
    """The differential test is only as good as its corpus: it has GPS, lenses, turns, zones,
    the exifread quirk of missing EXIF behind a large ICC profile, and text clean-up."""
    summaries = {name: read_exif_summary(path) for name, path in corpus.items()}
    assert {s.camera_make for s in summaries.values()} >= {"NIKON CORPORATION", "Canon"}
    assert any(s.has_gps for s in summaries.values())
    assert any(s.lens_model for s in summaries.values())
    assert len({s.orientation for s in summaries.values()}) >= 8
    assert summaries["camera-big-endian"].capture_time_unix_ms % 1000 == 345
    assert summaries["large-icc-before-exif"].camera_make == ""
    assert summaries["small-icc-before-exif"].camera_make == "NIKON CORPORATION"
    assert summaries["text-quirks"].camera_make == "Nikon"
    assert summaries["text-quirks"].camera_model == "Z 6"
    assert summaries["text-quirks"].lens_model == "L" * 128
    assert summaries["odd-types"].orientation == 0


def _rgb_with_sof(sof: bytes) -> bytes:
    segments, scan = split_jpeg(pillow_jpeg(11))
    return join_jpeg([(c, sof if c == 0xC0 else p) for c, p in segments], scan)


DECLINED: dict[str, Callable[[Path], bytes]] = {
    "zero-bytes": lambda tmp: b"",
    "png": lambda tmp: make_png(tmp / "a.png", seed=1).read_bytes(),
    "tiff": lambda tmp: make_tiff(tmp / "a.tif", seed=2).read_bytes(),
    "random": lambda tmp: random.Random(3).randbytes(5000),
    "jpeg-magic-only": lambda tmp: b"\xff\xd8\xff",
    "cut-before-sof": lambda tmp: with_exif(camera_tiff(II)).split(b"\xff\xc0")[0],
    "cut-inside-exif": lambda tmp: with_exif(camera_tiff(MM))[:300],
    "cut-before-sos": lambda tmp: make_truncated_jpeg(tmp / "cut.jpg", seed=4).read_bytes().split(
        b"\xff\xda")[0],
    "12-bit-frame": lambda tmp: _rgb_with_sof(b"\x0c\x00\x40\x00\x60\x03" + bytes(9)),
    "zero-width-frame": lambda tmp: _rgb_with_sof(b"\x08\x00\x40\x00\x00\x03" + bytes(9)),
    "decompression-bomb": lambda tmp: _rgb_with_sof(b"\x08\xff\xff\xff\xff\x03" + bytes(9)),
    "tem-marker": lambda tmp: with_exif(camera_tiff(II)).replace(b"\xff\xdb", b"\xff\x01\xff\xdb"),
    "non-utf8-make": lambda tmp: with_exif(camera_tiff(II, make=b"Nik\xf6n")),
    "make-as-bytes": lambda tmp: with_exif(camera_tiff(II, ifd0_extra=[
        (0x010F, 1, 5, b"Nikon")])),
    "65535-entries": lambda tmp: with_exif(b"MM\x00*\x00\x00\x00\x08\xff\xff" + bytes(60)),
    "fill-bytes-before-exif": lambda tmp: join_jpeg(*split_jpeg(with_exif(camera_tiff(II))),
                                                    fill_from=0),
    "text-past-segment": lambda tmp: with_exif(camera_tiff(MM, ifd0_extra=[
        (0x0110, ASCII, 40, b"\x00\x00\xff\x00")])),
    "photoshop-cut-after-a-code": lambda tmp: with_exif(
        camera_tiff(II), after=[(0xED, _photoshop(tail=b"8BIM\x04\x04"))]),
    "jfif-too-short": lambda tmp: with_exif(camera_tiff(II), before=[(0xE0, b"JFIF\x00")]),
    "adobe-too-short": lambda tmp: with_exif(camera_tiff(II), after=[(0xEE, b"Adobe")]),
    "icc-chunk-too-short": lambda tmp: with_exif(camera_tiff(II), after=[
        (0xE2, b"ICC_PROFILE\x00\x01")]),
    "bad-quantization-table": lambda tmp: with_exif(camera_tiff(II), after=[(0xDB, bytes(40))]),
    "exif-pointer-as-text": lambda tmp: with_exif(tiff_block(II, {"ifd0": [
        text(0x010F, "Nikon"), text(0x8769, "8")]})[0]),
}


@QUIET
@pytest.mark.parametrize("name", sorted(DECLINED))
def test_what_it_cannot_settle_is_declined(tmp_path: Path, name: str) -> None:
    """Not JPEG, cut short, a frame Pillow rejects, text exifread prints oddly, absurd IFDs:
    None, so the caller asks exifread and Pillow (which still give a summary)."""
    data = DECLINED[name](tmp_path)
    assert summary_from_jpeg_head(data) is None
    assert summary_from_jpeg_head(memoryview(data)) is None
    path = tmp_path / "declined.jpg"
    path.write_bytes(data)
    assert isinstance(read_exif_summary(path), ExifSummary)


def test_an_x_resolution_pillow_chokes_on_is_declined(tmp_path: Path) -> None:
    """Pillow reads a dpi from IFD0 and fails to open a file whose XResolution is one byte;
    the slow path then takes the size from EXIF. That is left to it, not guessed."""
    ifds = camera_ifds(II)
    ifds["ifd0"] = [(0x011A, 1, 1, b"\x48") if e[0] == 0x011A else e for e in ifds["ifd0"]]
    data = with_exif(tiff_block(II, ifds, ("ifd0", "ifd1"))[0])
    path = tmp_path / "odd-dpi.jpg"
    path.write_bytes(data)
    assert summary_from_jpeg_head(data) is None
    assert (read_exif_summary(path).width, read_exif_summary(path).height) == (6048, 4024)


def test_head_may_be_a_memoryview_or_the_whole_file(corpus: dict[str, Path]) -> None:
    """bytes or memoryview, a 1 MiB head or the whole file: the same answer."""
    data = corpus["camera-big-endian"].read_bytes()
    assert summary_from_jpeg_head(memoryview(data)) == summary_from_jpeg_head(data)
    assert summary_from_jpeg_head(data + bytes(5000)) == summary_from_jpeg_head(data)


def test_pillow_limit_matches_pillow() -> None:
    """The decompression-bomb limit is Pillow's own (2 * MAX_IMAGE_PIXELS)."""
    assert Image.MAX_IMAGE_PIXELS is not None
    assert PILLOW_MAX_PIXELS == 2 * Image.MAX_IMAGE_PIXELS


# --- fuzzing ----------------------------------------------------------------------------------


def _fuzz_seeds() -> list[tuple[bytes, list[int], list[int]]]:
    """Base files, with the offsets of their IFD entry counts and of their pointer fields."""
    seeds = []
    for order in (II, MM):
        ifds = camera_ifds(order)
        tiff, offsets = tiff_block(order, ifds, ("ifd0", "ifd1"))
        data = with_exif(tiff, keep_jfif=order == MM)
        base = data.index(b"Exif\x00\x00") + 6
        counts = [base + offsets[name] for name in ifds]
        pointers = [base + offsets[name] + 2 + 12 * i + 8
                    for name, entries in ifds.items() for i in range(len(entries))]
        pointers += [base + offsets[name] + 2 + 12 * len(ifds[name]) for name in ifds]
        seeds.append((data, counts, pointers))
    return seeds


def _mutate(rng: random.Random, data: bytes, counts: list[int], pointers: list[int]) -> bytes:
    out = bytearray(data)
    kind = rng.randrange(7)
    if kind == 0 and out:  # bit flips in the header region
        for _ in range(rng.randint(1, 8)):
            out[rng.randrange(min(len(out), 2048))] ^= 1 << rng.randrange(8)
    elif kind == 1:  # truncation
        del out[rng.randrange(len(out) + 1) :]
    elif kind == 2:  # an IFD entry count of 65535 or another absurd number
        at = rng.choice(counts)
        out[at : at + 2] = rng.choice((b"\xff\xff", b"\x03\xe9", rng.randbytes(2)))
    elif kind == 3:  # a pointer aimed at itself, at the header, out of range, or anywhere
        at = rng.choice(pointers)
        target = rng.choice((at - 18, 0, 8, len(data), 0xFFFFFFF0, rng.randrange(1 << 32)))
        out[at : at + 4] = (target % (1 << 32)).to_bytes(4, rng.choice(("big", "little")))
    elif kind == 4:  # a segment length changed
        markers = [i for i in range(2, min(len(out), 4096)) if out[i - 1] == 0xFF
                   and out[i] >= 0xC0 and out[i] != 0xFF]
        at = rng.choice(markers or [2]) + 1
        out[at : at + 2] = rng.randbytes(2)
    elif kind == 5:  # fill bytes, TEM, RST or junk inserted among the segments
        at = rng.randrange(min(len(out), 2048) + 1)
        out[at:at] = rng.choice((b"\xff\xff", b"\xff\x01", b"\xff\xd3", b"\x00\x17", b"\xff"))
    else:  # a type or count field rewritten
        at = rng.choice(pointers) - rng.choice((2, 4, 6))
        out[at : at + 2] = rng.randbytes(2)
    return bytes(out)


@QUIET
def test_fuzzed_heads_never_raise_and_never_disagree(tmp_path: Path) -> None:
    """Thousands of seeded mutations (bit flips, truncations, counts of 65535, self-pointing
    and out-of-range offsets, broken lengths, fill bytes, TEM): no exception, bounded work,
    and wherever an answer is given (checked on a sample) it is the slow path's answer."""
    rng = random.Random(20240601)
    seeds = _fuzz_seeds()
    answered = compared = 0
    for round_ in range(4000):
        data, counts, pointers = rng.choice(seeds)
        for _ in range(rng.choice((1, 1, 2, 3))):
            data = _mutate(rng, data, counts, pointers)
        summary = summary_from_jpeg_head(data)
        answered += summary is not None
        if summary is not None and round_ % 8 == 0:
            path = tmp_path / "fuzzed.jpg"
            path.write_bytes(data)
            assert summary == read_exif_summary(path), f"round {round_}: {data[:64]!r}"
            compared += 1
    assert answered > 1000 and compared > 100  # the mutations leave many files readable


def test_random_bytes_after_jpeg_magic_never_raise() -> None:
    """Pure noise behind FF D8 FF (and behind a JFIF header) is declined or read, not raised."""
    rng = random.Random(7)
    for _ in range(2000):
        noise = rng.randbytes(rng.randrange(0, 3000))
        prefix = rng.choice((b"\xff\xd8\xff", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"))
        summary = summary_from_jpeg_head(prefix + noise)
        assert summary is None or isinstance(summary, ExifSummary)
