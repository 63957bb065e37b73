"""The demo's last step, as a user's application does it: load the registered PP-OCR packages back with
inference-models' ``AutoModel.from_pretrained`` (the weights endpoint is ``$ROBOFLOW_API_HOST``, the key
``$ROBOFLOW_API_KEY``), find the words of a rendered image with the detector, read each with the
recogniser, and print what was found and read. Imports no weightpack code: only the consumer.

    ROBOFLOW_API_HOST=URL ROBOFLOW_API_KEY=KEY .venv-consumer/bin/python scripts/demo_read.py [--out DIR]

``--detector`` / ``--recognizer`` name other registered models (``pp-ocrv6-det/v6-small`` and
``pp-ocrv6-rec/v6-small``: PP-OCRv6, ``pack ppocr-v6-det`` and ``pack ppocr-v6``).

Exit 0 when every rendered word was found and read back, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

WORDS = ["weightpack", "verified", "packages 2026"]
DETECTOR, RECOGNIZER = "pp-ocrv6-det/v4-ch", "pp-ocrv6-rec/v4-ch"


def render_page(words: list[str]) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """Black words on a white 640x360 page, one a line; the image (BGR uint8) and each word's box."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=48)
    page = Image.new("RGB", (640, 360), "white")
    draw = ImageDraw.Draw(page)
    boxes = []
    for i, word in enumerate(words):
        x, y = 40 + 60 * i, 40 + 110 * i
        draw.text((x, y), word, fill="black", font=font)
        boxes.append(tuple(int(v) for v in draw.textbbox((x, y), word, font=font)))
    return np.ascontiguousarray(np.asarray(page)[:, :, ::-1]), boxes


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="also write the page with the boxes found (read.png)")
    parser.add_argument("--detector", default=DETECTOR, help=f"the detector's model id (default {DETECTOR})")
    parser.add_argument("--recognizer", default=RECOGNIZER, help=f"the recogniser's model id ({RECOGNIZER})")
    args = parser.parse_args(argv)
    import torch
    from inference_models import AutoModel

    image, rendered = render_page(WORDS)
    print(f"rendered {WORDS} at {rendered}")
    detector = AutoModel.from_pretrained(args.detector, device=torch.device("cpu"))
    recognizer = AutoModel.from_pretrained(args.recognizer, device=torch.device("cpu"))
    print(f"AutoModel.from_pretrained({args.detector!r}) -> {type(detector).__name__}")
    print(f"AutoModel.from_pretrained({args.recognizer!r}) -> {type(recognizer).__name__}")
    [found] = detector.infer([image])
    boxes = found.xyxy.round().int().tolist()
    boxes.sort(key=lambda b: b[1])
    crops = [image[max(0, y1) : y2, max(0, x1) : x2] for x1, y1, x2, y2 in boxes]
    texts = [t.strip() for t in recognizer.infer(crops)] if crops else []
    print(f"the detector found {len(boxes)} text regions:")
    for box, text in zip(boxes, texts, strict=True):
        print(f"  box {box}: read {text!r}")
    if args.out:
        from PIL import Image, ImageDraw

        picture = Image.fromarray(image[:, :, ::-1].copy())
        for box in boxes:
            ImageDraw.Draw(picture).rectangle(box, outline="red", width=3)
        picture.save(args.out / "read.png")
        print(f"the page with the boxes found: {args.out / 'read.png'}")
    located = [max((iou(word, box) for box in boxes), default=0.0) for word in rendered]
    print("each rendered word's best box IoU: " + ", ".join(f"{v:.2f}" for v in located))
    if texts == WORDS and min(located) >= 0.5:
        print("every rendered word was found and read back")
        return 0
    print(f"FAILED: expected {WORDS} each in a box of IoU >= 0.5, read {texts}")
    return 1


def iou(a: tuple[int, ...] | list[int], b: tuple[int, ...] | list[int]) -> float:
    """IoU of two ``x1, y1, x2, y2`` boxes."""
    w = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
