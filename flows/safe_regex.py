"""Regular expressions from flow authors, with a guard against catastrophic backtracking.

The `regex` module accepts a per-call timeout, which stops a pattern like `(a|aa)+$` from
pinning a worker whatever the input; pattern and subject lengths are capped too.
"""

from __future__ import annotations

from functools import lru_cache

import regex

MAX_PATTERN_LENGTH = 500
MAX_SUBJECT_LENGTH = 10_000
TIMEOUT_SECONDS = 0.1


class UnsafePatternError(ValueError):
    pass


@lru_cache(maxsize=256)
def compile_safe(pattern: str) -> regex.Pattern:
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise UnsafePatternError(f"the pattern is longer than {MAX_PATTERN_LENGTH} characters.")
    try:
        return regex.compile(pattern)
    except regex.error as exc:
        raise UnsafePatternError(f"the pattern does not compile: {exc}.") from None


def search(pattern: str, text: str, *, ignore_case: bool = False) -> bool:
    compiled = compile_safe(f"(?i){pattern}" if ignore_case else pattern)
    try:
        return compiled.search(text[:MAX_SUBJECT_LENGTH], timeout=TIMEOUT_SECONDS) is not None
    except TimeoutError:
        raise UnsafePatternError(
            f"the pattern took longer than {TIMEOUT_SECONDS * 1000:.0f} ms (catastrophic backtracking?)."
        ) from None
