"""A reward written as a user would add one: this file plus one registration line.

``contains-answer`` is 1 when the row's answer appears in the response as a whole word (any case),
anywhere rather than on the first line as ``qa``'s exact match wants; its ground truth says the answer
in a sentence. It reads the row's ``answer`` column besides the prompt.
"""
import re


def contains_answer(completions: list[str], rows) -> list[float]:
    return [float(re.search(rf"(?<!\w){re.escape(row['answer'])}(?!\w)", completion, re.IGNORECASE) is not None)
            for completion, row in zip(completions, rows)]


def reference(row) -> str:
    return f" The answer is {row['answer']}."
