"""Gold labels for a post and for its augmented rewrites, as token-classification samples.

A post's gold labels come from its metadata: tokens and BIO tags (Twitter-2015/2017) or tokens and
(head, tail, relation) triples (MNRE). Both are reduced to spans over the tokens, `[start, end)`.
A rewrite is split into tokens, and each span is looked for again:

- `aug_entity` (entities swapped for others): the rewrite is aligned token by token with the post;
  tokens that stayed keep their tags, and a changed stretch that replaced exactly one entity (or a
  part of one) takes that entity's type. A changed stretch mixing an entity and other words, or an
  insertion at an entity's edge, cannot be labelled with confidence: the sample is dropped.
- `aug_style` (same meaning and entities): every entity found verbatim in the rewrite gets its
  tags; a rewrite that lost any entity is dropped, since its lost entity would be read as `O`.
"""

import difflib
import re
from dataclasses import dataclass, field

from generation.importers.twitter_conll import entities as bio_entities

_BIO = re.compile(r"^(O|[BI]-.+)$")


@dataclass
class Labels:
    """A sample's tokens, BIO tags (None: no NER gold) and relation triples over token spans."""

    tokens: list[str]
    tags: list[str] | None
    # MNRE: (head span, tail span, relation) with spans as (start, end).
    relations: list[tuple[tuple[int, int], tuple[int, int], str]] = field(default_factory=list)

    @property
    def has_gold(self) -> bool:
        return self.tags is not None or bool(self.relations)

    def spans(self) -> list[tuple[int, int, str | None]]:
        """Every labelled span: the tagged entities, then relation arguments not among them."""
        found: list[tuple[int, int, str | None]] = []
        if self.tags is not None:
            found += [
                (e["start"], e["end"], e["type"]) for e in bio_entities(self.tokens, self.tags)
            ]
        seen = {(start, end) for start, end, _ in found}
        for head, tail, _ in self.relations:
            for start, end in (head, tail):
                if (start, end) not in seen:
                    seen.add((start, end))
                    found.append((start, end, None))
        return found

    def record(self) -> dict:
        """`tokens`, `ner_tags`, `entities` and `relations` as the cotpd export writes them."""
        return {
            "tokens": list(self.tokens),
            "ner_tags": None if self.tags is None else list(self.tags),
            "entities": [] if self.tags is None else bio_entities(self.tokens, self.tags),
            "relations": [
                {
                    "head": {"name": self._name(head), "pos": list(head)},
                    "tail": {"name": self._name(tail), "pos": list(tail)},
                    "relation": relation,
                }
                for head, tail, relation in self.relations
            ],
        }

    def _name(self, span: tuple[int, int]) -> str:
        return " ".join(self.tokens[span[0] : span[1]])


def gold_labels(text: str, metadata: dict | None) -> Labels:
    """The post's gold labels from its metadata; its text split on spaces when it has none.

    Metadata that does not hold together (tags not matching the tokens, a relation outside them)
    is read as no gold rather than as wrong labels.
    """
    metadata = metadata if isinstance(metadata, dict) else {}
    tokens = metadata.get("tokens")
    if not (isinstance(tokens, list) and tokens and all(isinstance(t, str) for t in tokens)):
        return Labels(tokens=text.split(), tags=None)
    tags = metadata.get("tags")
    if not (
        isinstance(tags, list)
        and len(tags) == len(tokens)
        and all(isinstance(t, str) and _BIO.match(t) for t in tags)
    ):
        tags = None
    relations = []
    for pair in metadata.get("relations") or []:
        try:
            head = _span(pair["head"]["pos"], len(tokens))
            tail = _span(pair["tail"]["pos"], len(tokens))
            relation = str(pair["relation"])
        except (KeyError, TypeError, ValueError):
            continue
        relations.append((head, tail, relation))
    return Labels(
        tokens=list(tokens), tags=None if tags is None else list(tags), relations=relations
    )


def _span(pos: object, n_tokens: int) -> tuple[int, int]:
    if not (isinstance(pos, list | tuple) and len(pos) == 2):
        raise ValueError("a span is [start, end)")
    start, end = int(pos[0]), int(pos[1])
    if not 0 <= start < end <= n_tokens:
        raise ValueError("the span is outside the tokens")
    return start, end


def tokenize(text: str, known: set[str]) -> list[str]:
    """Split a rewrite into tokens like the post's: on spaces, with punctuation split off.

    A chunk that is one of the post's tokens stays whole (`@user`, `'s`, a URL); otherwise a known
    token followed by punctuation (`Zimmerman.`), a clitic the post splits off (`'s`) and
    punctuation at either end are split off.
    """
    tokens: list[str] = []
    for chunk in text.split():
        tokens += _split(chunk, known)
    return tokens


def _split(chunk: str, known: set[str]) -> list[str]:
    if not chunk:
        return []
    if chunk in known or len(chunk) == 1:
        return [chunk]
    for end in range(len(chunk) - 1, 0, -1):
        rest = chunk[end:]
        if chunk[:end] in known and (rest in known or not any(ch.isalnum() for ch in rest)):
            return [chunk[:end], *_split(chunk[end:], known)]
    if not chunk[0].isalnum() and chunk[0] not in "@#":
        return [chunk[0], *_split(chunk[1:], known)]
    for suffix in known:  # a clitic the post split off ("Cosby 's"): "Hanks's" → "Hanks", "'s"
        if len(suffix) > 1 and not suffix[0].isalnum() and chunk.endswith(suffix):
            if len(chunk) > len(suffix):
                return [*_split(chunk[: -len(suffix)], known), suffix]
    if not chunk[-1].isalnum():
        return [*_split(chunk[:-1], known), chunk[-1]]
    return [chunk]


def _rebuild(
    gold: Labels,
    tokens: list[str],
    moved: dict[tuple[int, int], list[tuple[int, int]]],
) -> Labels:
    """The rewrite's labels from where each gold span went (`moved[span]`: its new places)."""
    tags: list[str] | None = None
    if gold.tags is not None:
        tags = ["O"] * len(tokens)
        for start, end, kind in gold.spans():
            if kind is None:
                continue
            for new_start, new_end in moved[(start, end)]:
                tags[new_start] = f"B-{kind}"
                for index in range(new_start + 1, new_end):
                    tags[index] = f"I-{kind}"
    relations = [
        (moved[head][0], moved[tail][0], relation) for head, tail, relation in gold.relations
    ]
    return Labels(tokens=tokens, tags=tags, relations=relations)


def project_style(gold: Labels, rewrite: str) -> Labels | None:
    """Labels of a style rewrite: every entity found verbatim; None when one did not survive."""
    tokens = tokenize(rewrite, set(gold.tokens))
    moved: dict[tuple[int, int], list[tuple[int, int]]] = {}
    taken = [False] * len(tokens)
    # Longer entities first, so "George Zimmerman" is found before a lone "Zimmerman".
    for start, end, _ in sorted(gold.spans(), key=lambda s: s[0] - s[1]):
        needle = gold.tokens[start:end]
        width = len(needle)
        places = [
            (i, i + width)
            for i in range(len(tokens) - width + 1)
            if tokens[i : i + width] == needle and not any(taken[i : i + width])
        ]
        if not places:
            # The same words may already be taken by an identical entity (two "Trump"s).
            places = [
                place for (s, e), found in moved.items() if gold.tokens[s:e] == needle
                for place in found
            ]  # fmt: skip
            if not places:
                return None
        for i, j in places:
            taken[i:j] = [True] * (j - i)
        moved[(start, end)] = places
    return _rebuild(gold, tokens, moved)


def project_replacement(gold: Labels, rewrite: str) -> Labels | None:
    """Labels of an entity replacement, by aligning the rewrite with the post; None if unsure."""
    tokens = tokenize(rewrite, set(gold.tokens))
    owner: list[int | None] = [None] * len(gold.tokens)
    spans = gold.spans()
    for number, (start, end, _) in enumerate(spans):
        for index in range(start, end):
            if owner[index] is None:
                owner[index] = number
    new_owner: list[int | None] = [None] * len(tokens)
    matcher = difflib.SequenceMatcher(a=gold.tokens, b=tokens, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            new_owner[j1:j2] = owner[i1:i2]
            continue
        if i1 == i2:  # an insertion: inside one entity it extends it, beside one it is unclear
            before = owner[i1 - 1] if i1 > 0 else None
            after = owner[i1] if i1 < len(owner) else None
            if before is not None and before == after:
                new_owner[j1:j2] = [before] * (j2 - j1)
            elif before is not None or after is not None:
                return None
            continue
        owners = set(owner[i1:i2])
        if len(owners) > 1:
            return None  # the change mixes entities, or an entity and other words
        new_owner[j1:j2] = [owners.pop()] * (j2 - j1)
    moved: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for number, (start, end, _) in enumerate(spans):
        places = [index for index, found in enumerate(new_owner) if found == number]
        if not places or places[-1] - places[0] + 1 != len(places):
            return None  # the entity was dropped or split apart
        moved[(start, end)] = [(places[0], places[-1] + 1)]
    return _rebuild(gold, tokens, moved)
