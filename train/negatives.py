"""Negative texts: confusables derived from the keyword, and general speech from the repo corpus.

Confusables are generated, not hand-listed. The keyword and every word of
``train/corpus/words.txt`` (38k English words) are turned into phonemes by espeak-ng (through
piper's bundled phonemizer), then ranked by a phoneme edit distance in which similar sounds
(t/d/flap, m/n, vowels) cost less:

- *sound-alikes*: whole words close to the keyword ("commuter", "compute"), never the keyword
  itself or the keyword plus a suffix ("computers" would teach the model to wait);
- *parts*: words close to a prefix or suffix of the keyword ("come", "pewter", "cute"), and
  for a multi-word keyword each of its words alone;
- *phrases*: two words whose sounds together approximate the keyword ("come pewter"), kept
  only when their joint sounds are at least ``phrase_min_distance`` from the keyword: a TTS
  voice runs the two words together, so "cam pewter" *is* "computer" when synthesised, and
  training or calibrating on such near-homophones teaches the model to distrust the keyword
  itself (docs/experiments.md, e01-e03);
- *cuts*: the keyword's spelling cut at a vowel/consonant boundary ("compu", "puter").

General speech comes from ``train/corpus/sentences.txt``; sentences containing the keyword
are dropped.
"""
from __future__ import annotations

import functools
import logging
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

CORPUS_DIR = Path(__file__).resolve().parent / "corpus"
WORDS_FILE = CORPUS_DIR / "words.txt"
SENTENCES_FILE = CORPUS_DIR / "sentences.txt"

VOWELS = set("aeiouyæɑɒɔəɚɛɜɝɪʊʌɐɘɵɞɤɯɨʉøœ")
UNITS = {"aɪ", "eɪ", "ɔɪ", "aʊ", "oʊ", "əʊ", "ɪə", "eə", "ʊə", "tʃ", "dʒ"}
SIMILAR = [set("tdɾʔθð"), set("pb"), set("kɡg"), set("szʃʒ"), set("fvθ"), set("mnŋ"),
           set("lɹrɻ"), {"tʃ", "dʒ", "ʃ", "ʒ"}, set("wʍ")]


def keyword_text(keyword: str) -> str:
    """How the keyword is spoken: ``hey_robot`` -> ``hey robot``."""
    text = re.sub(r"[_\-]+", " ", keyword).strip()
    if not text:
        raise ValueError(f"keyword {keyword!r} has nothing to say")
    return text


def contains_keyword(text: str, keyword: str) -> bool:
    words = re.findall(r"[a-z']+", text.lower())
    kw = re.findall(r"[a-z']+", keyword_text(keyword).lower())
    return any(words[i:i + len(kw)] == kw for i in range(len(words) - len(kw) + 1))


CARRIERS_FILE = CORPUS_DIR / "carriers.txt"


def carrier_phrases() -> list[str]:
    """Short phrases spoken right before the keyword (``[data] keyword_context_fraction``)."""
    lines = [ln.strip() for ln in CARRIERS_FILE.read_text().splitlines()]
    return [ln for ln in lines if ln and not ln.startswith("#")]


def corpus_sentences(keyword: str) -> list[str]:
    """The repo's general-speech sentences, without those that contain the keyword."""
    lines = [ln.strip() for ln in SENTENCES_FILE.read_text().splitlines()]
    return [ln for ln in lines if ln and not ln.startswith("#") and not contains_keyword(ln, keyword)]


@functools.lru_cache(maxsize=1)
def word_list() -> tuple[str, ...]:
    return tuple(w for w in WORDS_FILE.read_text().split() if w)


# -- phonemes ---------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _phonemizer():
    from piper.phonemize_espeak import EspeakPhonemizer

    return EspeakPhonemizer()


def phonemize(text: str, voice: str = "en-us") -> str:
    """IPA of ``text`` from espeak-ng (stress marks kept; words joined by spaces)."""
    return phonemize_many([text], voice)[0]


def phonemize_many(texts, voice: str = "en-us") -> list[str]:
    """IPA of each text. Selecting the voice once, not per text, makes a 38k-word list take
    seconds instead of tens of seconds."""
    _phonemizer()  # initialises espeak-ng's data
    from piper import espeakbridge

    espeakbridge.set_voice(voice)
    out = []
    for text in texts:
        clauses = espeakbridge.get_phonemes(text)
        ipa = " ".join(re.sub(r"\([^)]+\)", "", ph) for ph, _, _ in clauses)  # drop (lang) switch marks
        out.append(unicodedata.normalize("NFC", re.sub(r"[.,;:!?]", " ", ipa)).strip())
    return out


def phones(ipa: str) -> tuple[str, ...]:
    """IPA string -> phoneme units (stress/space dropped; length marks and diphthongs kept whole)."""
    chars = [c for c in unicodedata.normalize("NFD", ipa) if c not in "ˈˌ ‿-"]
    units: list[str] = []
    for c in chars:
        if units and (c == "ː" or unicodedata.category(c) == "Mn" or units[-1] + c in UNITS):
            units[-1] += c
        else:
            units.append(c)
    return tuple(units)


def _is_vowel(p: str) -> bool:
    return p[0] in VOWELS


@functools.lru_cache(maxsize=None)
def substitution_cost(a: str, b: str) -> float:
    if a == b:
        return 0.0
    if a.rstrip("ː") == b.rstrip("ː"):
        return 0.2
    va, vb = _is_vowel(a), _is_vowel(b)
    if va and vb:
        return 0.5
    if va != vb:
        return 1.0
    return 0.3 if any(a in g and b in g for g in SIMILAR) else 0.7


def phone_distance(a: tuple[str, ...], b: tuple[str, ...]) -> float:
    """Weighted edit distance between phoneme sequences (insert/delete 1, substitutions cheaper
    between similar sounds)."""
    prev = [float(j) for j in range(len(b) + 1)]
    for i in range(1, len(a) + 1):
        cur = [float(i)] + [0.0] * len(b)
        for j in range(1, len(b) + 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + substitution_cost(a[i - 1], b[j - 1]))
        prev = cur
    return prev[-1]


# -- confusables ------------------------------------------------------------------------
@dataclass(frozen=True)
class Confusable:
    text: str
    kind: str
    """sound-alike | part | phrase | cut"""
    distance: float
    """Phoneme distance to what it imitates, per phoneme (0 = same sounds)."""


def spelling_cuts(text: str, n: int) -> list[str]:
    """The keyword's letters cut at vowel/consonant boundaries: longest prefixes and suffixes."""
    letters = text.replace(" ", "").lower()
    vowel = [c in "aeiouy" for c in letters]
    cuts = set()
    for i in range(3, len(letters) - 2):
        onset = not vowel[i] and i + 1 < len(letters) and vowel[i + 1]  # "com|puter"
        after_vowel = vowel[i - 1] and not vowel[i]                       # "compu|ter"
        if onset or after_vowel:
            cuts.update((letters[:i], letters[i:]))
    return sorted(cuts, key=lambda c: (-len(c), c))[:n]


def confusables(keyword: str, count: int, words: tuple[str, ...] | None = None,
                phrase_min_distance: float = 0.0) -> list[Confusable]:
    """About ``count`` confusable texts for ``keyword``, most similar first within each kind.

    Shares: 40% sound-alikes, 30% parts, 20% phrases, 10% cuts (unused shares roll over).
    ``phrase_min_distance``: phrases whose joint sounds are closer than this to the keyword
    (per-phoneme distance, see :func:`phone_distance`) are left out.
    """
    text = keyword_text(keyword)
    try:
        kw = phones(phonemize(text))
    except Exception as exc:  # no phonemizer: only spelling cuts and the keyword's words
        log.warning("no phonemizer (%s); confusables are spelling cuts only", exc)
        return [Confusable(c, "cut", 0.0) for c in spelling_cuts(text, count)]
    words = word_list() if words is None else words
    kw_words = set(text.lower().split())
    lexicon = {}
    candidates = [w for w in words if w not in kw_words and not w.startswith(text.replace(" ", ""))]
    for w, ipa in zip(candidates, phonemize_many(candidates)):
        p = phones(ipa)
        if p and p != kw and p[:len(kw)] != kw:
            lexicon[w] = p
    found: list[Confusable] = []
    found += _sound_alikes(kw, lexicon)
    found += _parts(kw, lexicon, text)
    found += _phrases(kw, lexicon, phrase_min_distance)
    found += [Confusable(c, "cut", 0.0) for c in spelling_cuts(text, count)]
    return _pick(found, count, {"sound-alike": 0.4, "part": 0.3, "phrase": 0.2, "cut": 0.1})


def _sound_alikes(kw, lexicon) -> list[Confusable]:
    out = []
    for w, p in lexicon.items():
        if abs(len(p) - len(kw)) <= 2:
            d = phone_distance(p, kw) / max(len(p), len(kw))
            if d <= 0.45:
                out.append(Confusable(w, "sound-alike", round(d, 3)))
    return sorted(out, key=lambda c: c.distance)


def _best_match(target, lexicon, limit: int, _memo: dict = {}) -> list[tuple[float, str]]:
    key = (target, id(lexicon), limit)
    if key not in _memo:
        _memo.clear() if len(_memo) > 256 else None
        _memo[key] = _rank(target, lexicon)[:limit]
    return _memo[key]


def _rank(target, lexicon) -> list[tuple[float, str]]:
    scored = []
    for w, p in lexicon.items():
        if abs(len(p) - len(target)) <= 1:
            scored.append((phone_distance(p, target) / max(len(p), len(target)), w))
    return sorted(scored)


def _parts(kw, lexicon, text) -> list[Confusable]:
    out = [Confusable(w, "part", 0.0) for w in text.split()] if " " in text else []
    for n in range(2, len(kw) - 1):
        for target in (kw[:n], kw[-n:]):
            out += [Confusable(w, "part", round(d, 3)) for d, w in _best_match(target, lexicon, 2)
                    if d <= 0.35]
    return sorted(out, key=lambda c: c.distance)


def _phrases(kw, lexicon, min_distance: float = 0.0) -> list[Confusable]:
    """Two-word phrases built from the best matches of a prefix and the rest of the keyword;
    ``distance`` is that of the phrase's joint sounds to the keyword (what a listener hears)."""
    out = []
    for i in range(2, len(kw) - 1):
        left = _best_match(kw[:i], lexicon, 2)
        right = _best_match(kw[i:], lexicon, 2)
        for _, wl in left:
            for _, wr in right:
                spoken = lexicon[wl] + lexicon[wr]
                if spoken[:len(kw)] == kw:  # "hay robots" *is* "hey robot" (+ a suffix)
                    continue
                d = phone_distance(spoken, kw) / max(len(spoken), len(kw))
                if min_distance <= d <= 0.35:
                    out.append(Confusable(f"{wl} {wr}", "phrase", round(d, 3)))
    return sorted(out, key=lambda c: c.distance)


def _pick(found: list[Confusable], count: int, shares: dict[str, float]) -> list[Confusable]:
    """Take each kind's share of ``count`` (best first), then fill up from the rest; no repeats."""
    seen: set[str] = set()
    picked: list[Confusable] = []
    by_kind: dict[str, list[Confusable]] = {}
    for c in found:
        if c.text.lower() not in seen:
            seen.add(c.text.lower())
            by_kind.setdefault(c.kind, []).append(c)
    rest: list[Confusable] = []
    for kind, share in shares.items():
        items = by_kind.get(kind, [])
        n = round(count * share)
        picked += items[:n]
        rest += items[n:]
    rest.sort(key=lambda c: c.distance)
    return picked + rest[:max(0, count - len(picked))]
