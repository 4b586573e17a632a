"""List filters (AIP-160 style, as GCE's `filter` parameter), ordering and page tokens.

Accepted: `field OP value` with OP in `= != : > < >= <=`, `field:*` (the field exists),
dotted fields (`labels.owner`, `scheduling.automaticRestart`), quoted or bare values, `*`
wildcards in `=`/`!=`, terms joined by AND (explicit or implicit), OR, NOT / `-`, and
parentheses; also the older regex form `name eq 'vm-.*'` / `ne` (whole-field match).
"""

from __future__ import annotations

import base64
import fnmatch
import re
from collections.abc import Callable
from typing import Any

from sim.gce.errors import invalid

Predicate = Callable[[dict[str, Any]], bool]
_TOKEN = re.compile(
    r"""\s*(?:(?P<lp>\()|(?P<rp>\))|(?P<op>!=|>=|<=|=|:|>|<)|"(?P<dq>(?:[^"\\]|\\.)*)"|'(?P<sq>(?:[^'\\]|\\.)*)'|(?P<word>[^\s()=!<>:"']+))"""
)
_REGEX_TERM = re.compile(r"""\s*([\w.-]+)\s+(eq|ne)\s+(?:'([^']*)'|"([^"]*)"|(\S+))""")
MAX_RESULTS = 500


def _lookup(item: dict[str, Any], field: str) -> tuple[bool, Any]:
    value: Any = item
    for part in field.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        else:
            return False, None
    return True, value


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _compare(actual: Any, op: str, wanted: str) -> bool:
    if isinstance(actual, list):  # a repeated field matches when any element does
        return any(_compare(element, op, wanted) for element in actual)
    text = _text(actual)
    if op == ":":
        return wanted in text
    if op in ("=", "!="):
        equal = fnmatch.fnmatchcase(text, wanted) if "*" in wanted else text == wanted
        equal = equal or (isinstance(actual, bool) and text == wanted.lower())
        return equal if op == "=" else not equal
    try:
        left, right = float(text), float(wanted)
    except ValueError:
        left, right = text, wanted  # type: ignore[assignment]
    return {">": left > right, "<": left < right, ">=": left >= right, "<=": left <= right}[op]


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens: list[tuple[str, str]] = []
        position = 0
        text = text.strip()
        while position < len(text):
            match = _TOKEN.match(text, position)
            if match is None or match.end() == position:
                raise invalid(f"Invalid list filter expression '{text}'.")
            position = match.end()
            kind = match.lastgroup or ""
            if kind in ("dq", "sq"):
                self.tokens.append(("value", match.group(kind).replace('\\"', '"')))
            else:
                self.tokens.append((kind, match.group(kind)))
        self.text = text
        self.at = 0

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def _next(self) -> tuple[str, str]:
        token = self._peek()
        if token is None:
            raise invalid(f"Invalid list filter expression '{self.text}'.")
        self.at += 1
        return token

    def parse(self) -> Predicate:
        predicate = self._or()
        if self._peek() is not None:
            raise invalid(f"Invalid list filter expression '{self.text}'.")
        return predicate

    def _or(self) -> Predicate:
        terms = [self._and()]
        while self._peek() == ("word", "OR"):
            self.at += 1
            terms.append(self._and())
        return terms[0] if len(terms) == 1 else (lambda item: any(t(item) for t in terms))

    def _and(self) -> Predicate:
        terms = [self._unary()]
        while (token := self._peek()) is not None and token not in (("rp", ")"), ("word", "OR")):
            if token == ("word", "AND"):
                self.at += 1
            terms.append(self._unary())
        return terms[0] if len(terms) == 1 else (lambda item: all(t(item) for t in terms))

    def _unary(self) -> Predicate:
        token = self._peek()
        if token == ("word", "NOT"):
            self.at += 1
            inner = self._unary()
            return lambda item: not inner(item)
        if token == ("lp", "("):
            self.at += 1
            inner = self._or()
            if self._next() != ("rp", ")"):
                raise invalid(f"Invalid list filter expression '{self.text}'.")
            return inner
        return self._term()

    def _term(self) -> Predicate:
        kind, field = self._next()
        negate = kind == "word" and field.startswith("-")
        if kind != "word":
            raise invalid(f"Invalid list filter expression '{self.text}'.")
        field = field.lstrip("-")
        op_kind, op = self._next()
        if op_kind != "op":
            raise invalid(f"Invalid list filter expression '{self.text}'.")
        value_kind, wanted = self._next()
        if value_kind not in ("value", "word"):
            raise invalid(f"Invalid list filter expression '{self.text}'.")

        def test(item: dict[str, Any]) -> bool:
            present, actual = _lookup(item, field)
            if op == ":" and wanted == "*":
                result = present
            elif not present:
                result = op == "!="
            else:
                result = _compare(actual, op, wanted)
            return not result if negate else result

        return test


def _regex_form(text: str) -> Predicate | None:
    """`name eq 'vm-.*'` terms (whole-field regular expressions), or None if not that form."""
    terms: list[tuple[str, bool, re.Pattern[str]]] = []
    position = 0
    while position < len(text.strip()):
        match = _REGEX_TERM.match(text, position)
        if match is None:
            return None
        field, op = match.group(1), match.group(2)
        pattern = next(g for g in match.group(3, 4, 5) if g is not None)
        terms.append((field, op == "eq", re.compile(pattern)))
        position = match.end()
    if not terms:
        return None

    def test(item: dict[str, Any]) -> bool:
        for field, equal, pattern in terms:
            present, actual = _lookup(item, field)
            matched = present and pattern.fullmatch(_text(actual)) is not None
            if matched != equal:
                return False
        return True

    return test


def compile_filter(text: str | None) -> Predicate:
    if not text or not text.strip():
        return lambda item: True
    regex = _regex_form(text)
    return regex if regex is not None else _Parser(text).parse()


def order(items: list[dict[str, Any]], order_by: str | None, default: str) -> list[dict[str, Any]]:
    spec = (order_by or default).strip()
    if spec not in ("name", "creationTimestamp desc", "insertTime", "creationTimestamp"):
        raise invalid(f"Invalid value for field 'orderBy': '{order_by}'.")
    field, _, direction = spec.partition(" ")
    return sorted(items, key=lambda item: str(item.get(field, "")), reverse=direction == "desc")


def _token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"v1:{offset}".encode()).decode()


def _offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        version, _, offset = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        if version != "v1":
            raise ValueError(token)
        return int(offset)
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid(f"Invalid value for field 'pageToken': '{token}'.") from exc


def page(
    items: list[Any], max_results: int | None, page_token: str | None
) -> tuple[list[Any], str | None]:
    """One page of `items` and the token of the next page (None on the last)."""
    size = MAX_RESULTS if max_results is None else max_results
    if not 0 <= size <= MAX_RESULTS:
        raise invalid(f"Invalid value for field 'maxResults': '{max_results}'. Must be in 0..500.")
    if size == 0:
        size = MAX_RESULTS
    start = _offset(page_token)
    chunk = items[start : start + size]
    return chunk, _token(start + size) if start + size < len(items) else None
