"""Negatives derived from the keyword (train.negatives)."""

from __future__ import annotations

import pytest

from train import negatives

WORDS = (
    "commuter",
    "compute",
    "computers",
    "computer",
    "pewter",
    "come",
    "banana",
    "table",
    "scooter",
    "comfort",
    "cute",
    "elephant",
    "tomato",
    "umbrella",
    "calm",
    "mute",
    "robot",
    "rabbit",
    "hay",
    "hey",
    "robots",
)


def test_phoneme_distance_ranks_sound_alikes_first():
    kw = negatives.phones(negatives.phonemize("computer"))
    d = {
        w: negatives.phone_distance(negatives.phones(negatives.phonemize(w)), kw)
        for w in ("computer", "commuter", "banana", "umbrella")
    }
    assert d["computer"] == 0 < d["commuter"] < d["banana"]
    assert d["commuter"] < d["umbrella"]


def test_confusables_are_derived_from_the_keyword_sounds():
    found = negatives.confusables("computer", 12, words=WORDS)
    texts = [c.text for c in found]
    kinds = {c.kind for c in found}
    assert "commuter" in texts and "compute" in texts  # sound-alikes
    assert "pewter" in texts  # a word like the keyword's tail
    assert any(" " in t for t in texts)  # a phrase ("come pewter"-like)
    assert {"sound-alike", "part", "phrase", "cut"} <= kinds
    # never the keyword itself, nor the keyword plus a suffix
    assert "computer" not in texts and "computers" not in texts
    assert len(texts) == len(set(texts)) <= 12


def test_each_call_matches_against_its_own_words():
    """Found by ruff (bugbear B006): the match memo was a mutable default keyed by the word list's id,
    so a later call whose list landed at a freed list's address got the old matches (KeyError)."""
    first = negatives.confusables("computer", 12, words=("commuter", "compute", "pewter", "come", "banana"))
    second = negatives.confusables("computer", 12, words=("table", "scooter", "cute", "mute", "elephant"))
    assert {c.text for c in first if c.kind == "part"} <= {"commuter", "compute", "pewter", "come", "banana"}
    assert not {c.text for c in second} & {"commuter", "compute", "pewter", "come", "banana"}
    assert {c.text for c in second if c.kind == "sound-alike"} <= {"table", "scooter", "cute", "mute", "elephant"}


def test_phrase_floor_leaves_out_near_homophones():
    """A TTS voice says "cam pewter" as "computer": such phrases are left out above the floor."""
    words = WORDS + ("cam", "camp", "looter", "beauty")
    every = [c for c in negatives.confusables("computer", 40, words=words) if c.kind == "phrase"]
    kept = [
        c for c in negatives.confusables("computer", 40, words=words, phrase_min_distance=0.15) if c.kind == "phrase"
    ]
    assert any(c.distance < 0.15 for c in every)
    assert all(c.distance >= 0.15 for c in kept)
    assert {c.text for c in kept} <= {c.text for c in every}
    assert "cam pewter" in {c.text for c in every} - {c.text for c in kept}


def test_multi_word_keyword_gives_its_words_alone_as_parts():
    found = negatives.confusables("hey_robot", 10, words=WORDS)
    texts = [c.text for c in found]
    assert "hey" in texts and "robot" in texts
    assert "hey robot" not in texts and "hay robots" not in texts  # the keyword again, + a suffix


def test_spelling_cuts():
    assert negatives.spelling_cuts("computer", 4) == ["compu", "puter", "com", "ter"]


def test_corpus_sentences_exclude_the_keyword():
    all_sentences = negatives.corpus_sentences("zzzz")
    assert len(all_sentences) >= 250
    kept = negatives.corpus_sentences("computer")
    assert 0 < len(all_sentences) - len(kept) < 10
    assert not any(negatives.contains_keyword(s, "computer") for s in kept)
    assert any("commute" in s.lower() for s in kept)  # confusable words are welcome


@pytest.mark.parametrize(
    "keyword, text", [("computer", "computer"), ("hey_robot", "hey robot"), ("ok-home", "ok home")]
)
def test_keyword_text(keyword, text):
    assert negatives.keyword_text(keyword) == text


def test_generated_sentences_are_seeded_distinct_and_never_say_the_keyword():
    a = negatives.generated_sentences("time", 400, seed=5)
    assert a == negatives.generated_sentences("time", 400, seed=5)
    assert a != negatives.generated_sentences("time", 400, seed=6)
    assert len(a) == len(set(a)) == 400
    # "time" is common in talk and in the templates ("Set a timer" is not the word; "what time" is)
    assert not any(negatives.contains_keyword(s, "time") for s in a)
    assert any(ch.isdigit() for s in a for ch in s)  # numbers, times, addresses
    assert negatives.generated_sentences("time", 0) == []


def test_speech_texts_are_the_corpus_then_the_generated():
    texts = negatives.speech_texts("computer", 50, seed=1)
    corpus = negatives.corpus_sentences("computer")
    assert texts[: len(corpus)] == corpus and len(texts) == len(corpus) + 50
