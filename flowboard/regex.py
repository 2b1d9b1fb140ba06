"""Regular expressions written by users (conditions, nodes) run on RE2: linear time on any text, so a pattern such as
`(a+)+$` can never hang a run (Python's `re` backtracks, and would take hours on 40 characters).

RE2 leaves out what needs backtracking: back-references (`\\1`) and look-around (`(?=…)`, `(?!…)`, `(?<=…)`,
`(?<!…)`). A pattern that uses them is refused with a message that says so.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import re2

MAX_PATTERN = 10_000  # characters
_BACKREF = re.compile(r"\\[1-9]|\(\?P=")
_LOOKAROUND = re.compile(r"\(\?<?[=!]")


@functools.lru_cache(maxsize=512)
def compile_regex(pattern: str, ignore_case: bool = False) -> Any:
    """A compiled RE2 pattern (with `search`, `match`, `fullmatch`, `findall`, `sub` as in `re`). Raises ValueError
    with a plain message when the pattern is invalid or uses a feature RE2 does not have."""
    if len(pattern) > MAX_PATTERN:
        raise ValueError(f"this regular expression is longer than {MAX_PATTERN:,} characters; shorten it")
    options = re2.Options()
    options.log_errors = False
    options.case_sensitive = not ignore_case
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
    if _BACKREF.search(pattern):
        raise ValueError("this regular expression uses a back-reference (such as \\1), which Flowboard does not "
                         "support because it can make a search run for hours; rewrite the pattern without it")
    if _LOOKAROUND.search(pattern):
        raise ValueError("this regular expression uses a look-ahead or look-behind ((?=…), (?!…), (?<=…) or "
                         "(?<!…)), which Flowboard does not support because it can make a search run for hours; "
                         "rewrite the pattern without it")
    raise ValueError(f"this is not a valid regular expression: {reason}")
