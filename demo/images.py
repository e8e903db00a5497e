"""Demo images drawn with Pillow: the sample data names image files but does not ship them."""

import hashlib
import json
from pathlib import Path

from PIL import Image, ImageDraw

PALETTE = [
    (36, 87, 197), (31, 122, 58), (179, 38, 30), (245, 180, 0), (106, 27, 154), (0, 131, 143)
]  # fmt: skip


def draw_image(path: Path, caption: str) -> None:
    """A 320×240 picture whose colours and shapes follow from the caption, captioned."""
    seed = hashlib.sha256(caption.encode()).digest()
    background = PALETTE[seed[0] % len(PALETTE)]
    image = Image.new("RGB", (320, 240), background)
    draw = ImageDraw.Draw(image)
    for i in range(4):
        x, y, r = seed[1 + i] % 280, seed[5 + i] % 200, 20 + seed[9 + i] % 50
        draw.ellipse((x, y, x + r, y + r), fill=PALETTE[seed[13 + i] % len(PALETTE)])
    draw.rectangle((0, 200, 320, 240), fill=(255, 255, 255))
    draw.text((8, 212), caption[:48], fill=(29, 35, 48))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, "JPEG", quality=85)


def draw_sample_images(sample_dir: Path, out_dir: Path) -> int:
    """Draw one image for every file name the MIKO samples carry; returns how many were drawn."""
    names: dict[str, str] = {}
    with open(sample_dir / "miko" / "pipeline_outputs_sample.jsonl", encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            names[record["image_id"]] = record["text"]
    with open(sample_dir / "miko" / "release_sample.json", encoding="utf-8") as release:
        for record in json.load(release):
            names[record["image"]] = record["text"]
    with open(sample_dir / "cotpd" / "twitter2015_sample.txt", encoding="utf-8") as conll:
        for line in conll:
            if line.startswith("IMGID:"):
                image_id = line.removeprefix("IMGID:").strip()
                names[f"{image_id}.jpg"] = f"Tweet {image_id}"
    for name, text in names.items():
        draw_image(out_dir / name, text)
    return len(names)
