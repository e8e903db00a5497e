"""How each item kind reads to an annotator: the relation it states, in plain words."""

RELATIONS: dict[str, str] = {
    # MIKO's ten slots (ATOMIC relations and the open intention).
    "xWant": "What the user wants after posting",
    "oEffect": "What happens to others who see it",
    "xAttr": "What the user is like",
    "xIntent": "What the user intended",
    "xReact": "How the user feels after posting",
    "oReact": "How others feel when they see it",
    "oWant": "What others want when they see it",
    "xEffect": "What the user will do next",
    "xNeed": "What the user needed first",
    "open": "Why the user posted (open intention)",
    # CoTPD knowledge.
    "cot_noun": "The entities, slang and terms explained",
    "cot_sentence": "The sentence explained with its background",
    "cot_multimodal": "How the text and the image relate",
    "aug_style": "The text rewritten in social-media style",
    "aug_entity": "The text with its entities swapped",
    "aug_image": "An image that would fit the text",
}


def relation_label(kind: str) -> str:
    return RELATIONS.get(kind, kind.replace("_", " ").capitalize())
