"""Splitting a document into overlapping passages of about N tokens.

A token here is a whitespace-separated word. That is embedder-neutral and close enough to
model tokens for sizing (English runs ~1.3 word pieces per word, so the default 200 stays
within all-MiniLM-L6-v2's 256-piece window). Scripts written without spaces would make a
whole paragraph one "word", so, as BERT-style tokenizers do, each Chinese or Japanese
character is a token of its own, and any other run without spaces (a URL, Thai text) is cut
every MAX_RUN characters: a passage is bounded in characters whatever the language.
Cuts prefer sentence and paragraph ends, so a passage reads as complete sentences and an
answer is rarely split across two passages.
"""

from __future__ import annotations

import re

MAX_RUN = 50
# Kana and CJK ideographs (unified, extension A, compatibility).
CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
TOKEN = re.compile(f"[{CJK}]|[^\\s{CJK}]{{1,{MAX_RUN}}}")
# Sentence-ending punctuation (ASCII, ideographic full stop, fullwidth ! and ?, ellipsis),
# optionally followed by closing quotes or brackets.
SENTENCE_END = re.compile("[.!?;:\u3002\uff01\uff1f\u2026][\"'\u201d\u2019)\\]]*$")


def chunk_text(text: str, size: int, overlap: int) -> list[str]:
    """Passages of at most `size` tokens; consecutive ones share up to `overlap` tokens."""
    if size < 1 or not 0 <= overlap < size:
        raise ValueError("chunk size must be positive and the overlap smaller than it")
    spans = [match.span() for match in TOKEN.finditer(text)]
    count = len(spans)
    if count == 0:
        return []
    # boundary[i]: a sentence or paragraph ends after token i.
    boundary = [
        bool(SENTENCE_END.search(text[s:e])) or (i + 1 < count and "\n" in text[e : spans[i + 1][0]])
        for i, (s, e) in enumerate(spans)
    ]
    chunks: list[str] = []
    start = 0
    while start < count:
        end = min(start + size, count)
        if end < count:
            # Cut after the last sentence end in the second half of the window, if any.
            for cut in range(end, start + size // 2, -1):
                if boundary[cut - 1]:
                    end = cut
                    break
        chunks.append(text[spans[start][0] : spans[end - 1][1]])
        if end >= count:
            break
        next_start = max(end - overlap, start + 1)
        if overlap:
            # Let the overlap begin at a sentence start rather than mid-sentence.
            for candidate in range(next_start, end):
                if boundary[candidate - 1]:
                    next_start = candidate
                    break
        start = next_start
    return chunks
