"""Regular expressions from flow authors, with guards against catastrophic patterns.

Two ways a short pattern can take a worker down, and a guard for each:
- Catastrophic backtracking (`(a|aa)+$`): the `regex` module accepts a per-call timeout,
  which stops the match whatever the input; subject lengths are capped too.
- Compile-time blow-up: `regex` expands fixed repeat counts when it compiles, so the 34
  characters `(?:(?:(?:a{65535}){65535}){65535})` asked for more than 20 GB and were
  killed by the kernel. `expanded_size` estimates that expansion before compiling.
"""

from __future__ import annotations

from functools import lru_cache

import regex

MAX_PATTERN_LENGTH = 500
MAX_SUBJECT_LENGTH = 10_000
TIMEOUT_SECONDS = 0.1
# About 400 bytes of compiled pattern per item: at most ~2 MB for one pattern.
MAX_EXPANDED_SIZE = 5_000

_QUANTIFIER = regex.compile(r"\{(\d*)(?:,(\d*))?\}")
# Verbose mode lets `#` start a comment, which expanded_size does not model.
_VERBOSE_FLAG = regex.compile(r"\(\?[A-Za-z0-9]*x[A-Za-z0-9-]*[:)]")


class UnsafePatternError(ValueError):
    pass


def expanded_size(pattern: str) -> int:
    """An upper estimate of how many items compiling `pattern` expands into.

    Only the minimum of a repeat is expanded by `regex` (`a{1000}` and `a{1000,}`, not
    `a{0,1000}` or `a+`), so each `{m,n}` multiplies the item before it by m.
    """
    # One frame per open group: [size of the group so far, size of its last item].
    stack = [[0, 0]]
    index, length = 0, len(pattern)
    while index < length:
        char, frame = pattern[index], stack[-1]
        if char == "\\":
            end = index + 2
            # \p{Letter}, \N{LATIN SMALL LETTER A}: the braces belong to the escape.
            if pattern[index + 1 : index + 2] in ("p", "P", "N") and pattern[end : end + 1] == "{":
                close = pattern.find("}", end)
                end = length if close < 0 else close + 1
            item, index = 1, end
        elif char == "[":
            end = index + 1
            end += pattern[end : end + 1] == "^"
            end += pattern[end : end + 1] == "]"  # a leading ] is a literal
            while end < length and pattern[end] != "]":
                end += 2 if pattern[end] == "\\" else 1
            item, index = 1, end + 1
        elif char == "(" and pattern.startswith("(?#", index):
            close = pattern.find(")", index)
            index = length if close < 0 else close + 1
            continue
        elif char == "(":
            stack.append([0, 0])
            index += 1
            continue
        elif char == ")" and len(stack) > 1:
            item, index = stack.pop()[0], index + 1
            frame = stack[-1]
        elif char == "{" and (quantifier := _QUANTIFIER.match(pattern, index)):
            times = max(int(quantifier.group(1) or 0), 1)
            frame[0] += frame[1] * (times - 1)
            frame[1] *= times
            index = quantifier.end()
            continue
        else:
            item, index = 1, index + 1
        frame[0] += item
        frame[1] = item
    while len(stack) > 1:  # unclosed groups: compile() refuses them anyway
        inner = stack.pop()
        stack[-1][0] += inner[0]
    return stack[0][0]


@lru_cache(maxsize=128)
def compile_safe(pattern: str) -> regex.Pattern:
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise UnsafePatternError(f"the pattern is longer than {MAX_PATTERN_LENGTH} characters.")
    if _VERBOSE_FLAG.search(pattern):
        raise UnsafePatternError("verbose mode (?x) is not supported.")
    if expanded_size(pattern) > MAX_EXPANDED_SIZE:
        raise UnsafePatternError(
            f"the pattern's fixed repeat counts are too large (they expand to more than {MAX_EXPANDED_SIZE} items)."
        )
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
