"""How item kinds read to people and to a model being trained: order and the question each asks."""

# MIKO's ten slots in their order, then CoTPD's knowledge kinds; unknown kinds sort after these.
KIND_ORDER = [
    "xWant",
    "oEffect",
    "xAttr",
    "xIntent",
    "xReact",
    "oReact",
    "oWant",
    "xEffect",
    "xNeed",
    "open",
    "cot_noun",
    "cot_sentence",
    "cot_multimodal",
    "aug_style",
    "aug_entity",
    "aug_image",
]

# The relation asked for, as an instruction; the MIKO wording follows the sentence starts the
# intentions were generated with (sample_data/README.md).
RELATION_INSTRUCTIONS = {
    "xWant": "What does the user want to do after posting this? "
    "Answer with one sentence starting 'After posting this Tweet, the user wants to'.",
    "oEffect": "What will others do after viewing this post? "
    "Answer with one sentence starting 'After viewing this Tweet, others will'.",
    "xAttr": "How would you describe the user who posts this? "
    "Answer with one sentence starting 'The user posts this Tweet because the user is'.",
    "xIntent": "What did the user intend by posting this? "
    "Answer with one sentence starting 'The user posts this Tweet because the user intended to'.",
    "xReact": "How does the user feel after posting this? "
    "Answer with one sentence starting 'After posting this Tweet, the user feels'.",
    "oReact": "How do others feel after viewing this post? "
    "Answer with one sentence starting 'After viewing this Tweet, others feel'.",
    "oWant": "What do others want to do after viewing this post? "
    "Answer with one sentence starting 'After viewing this Tweet, others want to'.",
    "xEffect": "What will happen to the user after posting this? "
    "Answer with one sentence starting 'After posting this Tweet, the user will'.",
    "xNeed": "What did the user need to do before posting this? "
    "Answer with one sentence starting 'Before posting this Tweet, the user needs to'.",
    "open": "Why did the user post this? "
    "Answer with one sentence starting 'The user post this tweet because'.",
    "cot_noun": "Explain the entities, slang and terms in the text of this post.",
    "cot_sentence": "Explain the sentence of this post with its background: who, why, sentiment.",
    "cot_multimodal": "Explain how the text and the image of this post relate.",
    "aug_style": "Rewrite the post in social-media style, keeping its meaning and entities.",
    "aug_entity": "Swap the entities of the post for others of the same type, "
    "then judge whether it is still plausible as fact.",
    "aug_image": "Imagine an image that fits the text of this post.",
}

SYSTEM_PROMPT = (
    "You read social-media posts (text and a description of their image) and infer the "
    "knowledge behind them: the intentions of the user and the reactions of others."
)


def kind_sort_key(kind: str) -> tuple[int, str]:
    try:
        return (KIND_ORDER.index(kind), kind)
    except ValueError:
        return (len(KIND_ORDER), kind)


def relation_instruction(kind: str) -> str:
    return RELATION_INSTRUCTIONS.get(kind, f"Give the {kind} knowledge for this post.")
