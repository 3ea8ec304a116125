"""Answer extraction and normalisation shared by accuracy metrics and verifiable rewards."""
from __future__ import annotations

import re
import string

_NUMBER = re.compile(r"-?[\d,]*\.?\d+")
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_number(text: str) -> str:
    """``"1,234.50"`` -> ``"1234.5"``; returns the stripped text when it is not a number."""
    cleaned = text.strip().rstrip(".").replace(",", "").replace("$", "").strip()
    try:
        value = float(cleaned)
    except ValueError:
        return text.strip()
    return str(int(value)) if value.is_integer() else repr(value)


def extract_gsm8k(completion: str) -> str | None:
    """The final answer of a GSM8K-style solution: after ``####``, after "answer is", else the last number."""
    for marker in ("####", "answer is"):
        if marker in completion:
            numbers = _NUMBER.findall(completion.split(marker)[-1])
            if numbers:
                return normalize_number(numbers[0])
    numbers = _NUMBER.findall(completion)
    return normalize_number(numbers[-1]) if numbers else None


def extract_boxed(completion: str) -> str | None:
    """The content of the last ``\\boxed{...}`` (balanced braces), or None."""
    start = completion.rfind("\\boxed")
    if start < 0:
        return None
    brace = completion.find("{", start)
    if brace < 0:
        return None
    depth = 0
    for index in range(brace, len(completion)):
        depth += {"{": 1, "}": -1}.get(completion[index], 0)
        if depth == 0:
            return completion[brace + 1:index]
    return None


def normalize_math(answer: str) -> str:
    """Light LaTeX normalisation so equivalent final answers compare equal as strings."""
    text = answer.strip().strip("$").rstrip(".")
    for old, new in (("\\left", ""), ("\\right", ""), ("\\!", ""), ("\\,", ""), ("dfrac", "frac"),
                     ("tfrac", "frac"), ("^\\circ", ""), ("^{\\circ}", ""), ("\\%", ""), (" ", "")):
        text = text.replace(old, new)
    text = re.sub(r"\\text\{(.*?)\}", r"\1", text)
    return normalize_number(text)


def normalize_qa(text: str) -> str:
    """SQuAD-style: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in string.punctuation)
    return " ".join(_ARTICLES.sub(" ", text).split())


def qa_match(completion: str, answers: list[str]) -> bool:
    """Exact match of the first line of the completion against any reference, after normalisation."""
    first_line = completion.strip().split("\n")[0]
    predicted = normalize_qa(first_line)
    return any(predicted == normalize_qa(answer) for answer in answers if answer)
