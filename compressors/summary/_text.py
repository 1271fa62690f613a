"""Text helpers shared by the summarizers and consolidation: sentences, content words, filler."""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["FILLER", "STOPWORDS", "content_words", "informative_words", "split_sentences"]

_WORD = re.compile(r"\w+", re.UNICODE)
_SENT = re.compile(r"(?<=[.!?])\s+(?=\S)|\n+")

STOPWORDS = frozenset(
    ["the", "and", "for", "are", "but", "not", "you", "all", "any", "can", "had", "her", "was", "one", "our", "out", "day", "get", "has", "him", "his", "how", "man", "new", "now", "old", "see", "two", "way", "who", "did", "its", "let", "put", "say", "she", "too", "use", "that", "with", "have", "this", "will", "your", "from", "they", "know", "want", "been", "good", "much", "some", "time", "very", "when", "come", "here", "just", "like", "long", "make", "many", "over", "such", "take", "than", "them", "well", "were", "what", "into", "about", "would", "there", "their", "which", "could", "other", "after", "first", "also", "back", "even", "most", "only", "then", "these", "think", "where", "being", "those", "every", "again", "never", "under", "while", "shall", "should", "might", "must", "does", "doing", "yeah", "yes", "okay", "really", "i'm", "it's", "that's", "don't", "you're", "i've", "i'll", "can't", "what's", "there's", "we're", "they're", "let's", "isn't", "didn't", "doesn't", "wasn't", "won't", "am", "is", "be", "to", "of", "in", "on", "at", "it", "as", "by", "or", "an", "so", "if", "we", "me", "my", "us", "he", "do", "go", "no", "up", "our", "ours", "hers", "mine", "yours", "myself", "yourself", "going", "got", "get", "gets", "thing", "things", "lot", "lots", "bit", "kind", "sort", "still", "yet", "though", "although", "because", "since", "until"]
)
"""Function words that carry no content."""

FILLER = frozenset(
    ["wow", "thanks", "thank", "great", "awesome", "cool", "nice", "glad", "hey", "haha", "lol", "amazing", "sounds", "totally", "definitely", "sure", "congrats", "congratulations", "fantastic", "wonderful", "incredible", "love", "lovely", "beautiful", "happy", "exciting", "excited", "hope", "hear", "hearing", "tell", "means", "mean", "appreciate", "proud", "support", "supportive", "keep", "guess", "oh", "ah", "hmm", "absolutely", "agree", "true", "right", "interesting", "fun", "stuff"]
)
"""Chit-chat words: content words by form, but they rarely carry a memory on their own."""


def content_words(text: str) -> set[str]:
    """Lower-cased words of 3+ characters that are not stop words."""
    return {w for w in _WORD.findall(text.lower()) if len(w) >= 3 and w not in STOPWORDS}


@lru_cache(maxsize=8192)
def informative_words(text: str) -> frozenset[str]:
    """Content words minus chit-chat filler: what a summary should keep."""
    return frozenset(content_words(text) - FILLER)


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text`` (split after ``.!?`` and at line breaks), stripped, non-empty."""
    return [s.strip() for s in _SENT.split(text) if s and s.strip()]
