"""Data the students tests share."""

# What the fake model answers, per kind; the open answer of every post is empty (a failure).
ANSWERS = {
    "xWant": "after posting this tweet the user wants to go home",
    "xIntent": "the user posts this because the user is happy",
    "open": "",
}
