"""A short example of every posts format, shown beside the upload form's Format menu.

Each example is a whole file that imports (tests/generation/test_import_examples.py imports every
one, with `auto`), so the page never shows a shape the importers refuse.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class FormatExample:
    format: str
    what: str
    sample: str


_INTENTIONS = "".join(
    f"Intention{n}: After posting this Tweet, the user wants to sail {n}.\\n" for n in range(1, 11)
)

EXAMPLES = [
    FormatExample(
        "jsonl",
        "The generic format: one JSON object a line; image, metadata and items are optional.",
        '{"id": "1", "text": "Off to the harbour!", "image": "1.jpg", '
        '"items": [{"kind": "xWant", "text": "to sail"}]}\n'
        '{"id": "2", "text": "Rain again.", "metadata": {"lang": "en"}}\n',
    ),
    FormatExample(
        "csv",
        "A table whose header has id and text; image and metadata (a JSON object) are optional.",
        'id,text,image\n1,Off to the harbour!,1.jpg\n2,"Rain, again.",\n',
    ),
    FormatExample(
        "miko-pipeline",
        "MIKO's pipeline outputs: one object a line with its image description, key information "
        "and intentions.",
        '{"question_id": 1, "image_id": "1.jpg", "text": "Off to the harbour!", '
        '"image_descrption": "A boat at a pier.", "keyinfo": "Concept: Sailing.", '
        f'"prompt": "...", "intention": "{_INTENTIONS}"}}\n',
    ),
    FormatExample(
        "miko-release",
        "The released MIKO benchmark: a JSON array; the image name is the post's id; "
        "intentions numbered 1 to 10, and ten 0/1 labels (optional).",
        '[{"text": "Off to the harbour!", "image": "80.jpg",\n'
        '  "intentions": {"Intention 1": "After posting this Tweet, the user wants to sail."},\n'
        '  "intention_labels": [1, 0, 1, 1, 0, 1, 1, 1, 0, 1]}]\n',
    ),
    FormatExample(
        "label-studio",
        "A Label Studio JSON export: a JSON array of tasks with data.text and data.image.",
        '[{"id": 7, "data": {"text": "Off to the harbour!",\n'
        '  "image": "/data/local-files/?d=images%5C7.jpg"}, "annotations": []}]\n',
    ),
    FormatExample(
        "twitter-conll",
        "Twitter-2015/2017 NER: IMGID:<id>, then a token and its BIO tag a line (tab between); "
        "a blank line between tweets.",
        "IMGID:1015799\nOff\tO\nto\tO\nLisbon\tB-LOC\n\n",
    ),
    FormatExample(
        "mnre",
        "Multimodal relation extraction: one Python dict a line (token, h, t, img_id, relation).",
        "{'token': ['Anna', 'sails', 'from', 'Lisbon'], 'h': {'name': 'Anna', 'pos': [0, 1]}, "
        "'t': {'name': 'Lisbon', 'pos': [3, 4]}, 'img_id': 'anna_1.jpg', "
        "'relation': '/per/loc/place_of_residence'}\n",
    ),
]
