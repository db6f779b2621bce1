"""Real media files for tests: JPEG and PNG stills with EXIF dates and GPS (Pillow), short videos
(ffmpeg), and live-photo halves carrying Apple's ContentIdentifier where a real iPhone puts it (the
still's Apple MakerNote, the video's QuickTime key), so that a real Immich links them by itself. Each
call with a different `seed` gives different bytes."""

from __future__ import annotations

import random
import shutil
import struct
import subprocess
from datetime import datetime
from fractions import Fraction
from io import BytesIO
from pathlib import Path

from PIL import Image, ImageDraw

_DATETIME_ORIGINAL = 0x9003
_OFFSET_TIME_ORIGINAL = 0x9011
_GPS_IFD = 0x8825
_EXIF_IFD = 0x8769
_MAKER_NOTE = 0x927C


def apple_maker_note(content_id: str) -> bytes:
    """An Apple MakerNote holding only the ContentIdentifier (tag 0x0011), as exiftool reads it:
    "Apple iOS\\0", version 1, "MM", then a big-endian IFD whose offsets count from the note's start."""
    head = b"Apple iOS\x00" + b"\x00\x01" + b"MM"
    value = content_id.encode() + b"\x00"
    ifd = struct.pack(">H", 1) + struct.pack(">HHII", 0x0011, 2, len(value), len(head) + 2 + 12 + 4) + b"\x00" * 4
    return head + ifd + value


def _dms(value: float) -> tuple[Fraction, Fraction, Fraction]:
    value = abs(value)
    degrees = int(value)
    minutes_float = (value - degrees) * 60
    minutes = int(minutes_float)
    seconds = Fraction(round((minutes_float - minutes) * 60 * 10000), 10000)
    return (Fraction(degrees), Fraction(minutes), seconds)


def _picture(seed: int, size: tuple[int, int]) -> Image.Image:
    rng = random.Random(seed)
    image = Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x1, y1 = rng.randrange(size[0]), rng.randrange(size[1])
        x2, y2 = x1 + rng.randrange(20, 200), y1 + rng.randrange(20, 200)
        draw.rectangle([x1, y1, x2, y2], fill=tuple(rng.randrange(256) for _ in range(3)))
    return image


def jpeg(
    seed: int,
    *,
    taken: datetime | None = datetime(2019, 5, 1, 10, 0, 0),
    offset: str | None = "+01:00",
    gps: tuple[float, float] | None = None,
    size: tuple[int, int] = (640, 480),
    make: str = "ScenarioCam",
    content_id: str | None = None,
) -> bytes:
    image = _picture(seed, size)
    exif = Image.Exif()
    exif[0x010F] = "Apple" if content_id else make  # Make
    exif[0x0110] = f"S{seed}"  # Model
    if taken is not None:
        ifd = exif.get_ifd(_EXIF_IFD)
        ifd[_DATETIME_ORIGINAL] = taken.strftime("%Y:%m:%d %H:%M:%S")
        if offset:
            ifd[_OFFSET_TIME_ORIGINAL] = offset
    if content_id:
        exif.get_ifd(_EXIF_IFD)[_MAKER_NOTE] = apple_maker_note(content_id)
    if gps is not None:
        lat, lon = gps
        gps_ifd = exif.get_ifd(_GPS_IFD)
        gps_ifd[1] = "N" if lat >= 0 else "S"
        gps_ifd[2] = _dms(lat)
        gps_ifd[3] = "E" if lon >= 0 else "W"
        gps_ifd[4] = _dms(lon)
    out = BytesIO()
    image.save(out, "JPEG", quality=85, exif=exif)
    return out.getvalue()


def png(seed: int, size: tuple[int, int] = (320, 200)) -> bytes:
    out = BytesIO()
    _picture(seed, size).save(out, "PNG")
    return out.getvalue()


def tiff(seed: int, size: tuple[int, int] = (320, 200)) -> bytes:
    """A TIFF, the other half of a pair beside a JPEG (as a camera's RAW would be)."""
    out = BytesIO()
    _picture(seed, size).save(out, "TIFF")
    return out.getvalue()


def xmp(*, description: str = "", rating: int | None = None, tags: tuple[str, ...] = (), darktable: str = "") -> str:
    """An XMP sidecar as Lightroom, digiKam or darktable write one beside a photo (`IMG_1.xmp`)."""
    attributes = (f'\n    xmp:Rating="{rating}"' if rating is not None else "") + \
                 (f'\n    darktable:history="{darktable}"' if darktable else "")
    body = (f'\n   <dc:description><rdf:Alt><rdf:li xml:lang="x-default">{description}</rdf:li></rdf:Alt></dc:description>'
            if description else "")
    if tags:
        body += "\n   <digiKam:TagsList><rdf:Seq>" + "".join(f"<rdf:li>{t}</rdf:li>" for t in tags) + "</rdf:Seq></digiKam:TagsList>"
    return ("<?xpacket begin='' id='W5M0MpCehiHzreSzNTczkc9d'?>\n<x:xmpmeta xmlns:x=\"adobe:ns:meta/\">\n"
            " <rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\">\n"
            "  <rdf:Description rdf:about=\"\" xmlns:dc=\"http://purl.org/dc/elements/1.1/\"\n"
            "    xmlns:xmp=\"http://ns.adobe.com/xap/1.0/\" xmlns:digiKam=\"http://www.digikam.org/ns/1.0/\"\n"
            f"    xmlns:darktable=\"http://darktable.sf.net/\"{attributes}>{body}\n"
            "  </rdf:Description>\n </rdf:RDF>\n</x:xmpmeta>\n<?xpacket end='w'?>\n")


def video(seed: int, path: Path, *, seconds: float = 1.0, size: str = "320x240",
          creation_time: str = "2020-07-04T12:00:00Z", content_id: str | None = None) -> Path:
    """A short H.264 MP4 (or MOV, by `path`'s suffix) made by ffmpeg; `seed` picks its colour; with
    `content_id`, the QuickTime key com.apple.quicktime.content.identifier of a live photo's video."""
    if shutil.which("ffmpeg") is None:
        raise RuntimeError("ffmpeg is missing: install it with `apt-get install -y ffmpeg`")
    rng = random.Random(seed)
    color = "0x%02x%02x%02x" % tuple(rng.randrange(256) for _ in range(3))
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"color=c={color}:s={size}:d={seconds}",
         "-f", "lavfi", "-i", f"sine=frequency={200 + seed % 800}:duration={seconds}",
         "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest",
         "-metadata", f"creation_time={creation_time}",
         *(["-metadata", f"com.apple.quicktime.content.identifier={content_id}", "-movflags", "use_metadata_tags"]
           if content_id else []),
         str(path)],
        check=True,
    )
    return path
