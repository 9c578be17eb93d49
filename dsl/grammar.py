"""The policy grammar, `policies.lark`, and the one Lark parser built from it.

The grammar is `policies.lark`, shipped with Warden as package data (`dsl.shipped`; LALR(1),
contextual lexer); its bytes are part of every policy digest. This module only builds the parser, and two modules use it: `dsl.parser` parses
policy files with it, and `dsl.syntax_errors` parses the examples of the known mistakes with it
to learn where each one happens, then explains the errors `dsl.parser` meets. Keeping the bare
parser apart lets the examples be parsed with exactly the parser files are parsed with, while
the dependency runs one way:

    dsl.parser -> dsl.syntax_errors -> dsl.mistakes
         |                |
         +----------------+-> dsl.grammar
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator
from lark import Lark, Token, Tree
from lark.lark import PostLex

from dsl.shipped import grammar_path

GRAMMAR_PATH = grammar_path()


@functools.cache
def grammar_bytes() -> bytes:
    """The grammar exactly as shipped; part of every policy digest."""
    return GRAMMAR_PATH.read_bytes()


@functools.cache
def grammar_digest() -> str:
    """`sha256:<hex>` of the grammar: recorded beside a stored policy set, so that a later
    release can tell whether the set is being compiled with the grammar it was digested with."""
    return "sha256:" + hashlib.sha256(grammar_bytes()).hexdigest()


@functools.cache
def policy_parser() -> Lark:
    """The Lark parser, built once per process."""
    whole_words = _WholeWords()
    parser = Lark(
        grammar_bytes().decode("utf-8"),
        parser="lalr",
        lexer="contextual",
        propagate_positions=True,
        maybe_placeholders=True,
        postlex=whole_words,
    )
    whole_words.keywords = {
        str(t.pattern.value): t.name
        for t in parser.terminals
        if t.pattern.type == "str" and str(t.pattern.value).isidentifier()
    }
    return parser


class _WholeWords(PostLex):
    """Make keywords whole, reserved words.

    NAME is accepted in every lexer state: without it the contextual lexer reads `tools` as the
    keyword `tool` followed by `s`, and `policyfoo` as `policy foo`. A NAME that spells a
    keyword is then given the keyword's type, so `when` is never a name, wherever it appears.
    """

    always_accept = ("NAME",)

    def __init__(self) -> None:
        self.keywords: dict[str, str] = {}

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        keywords = self.keywords
        for token in stream:
            if token.type == "NAME" and token.value in keywords:
                token.type = keywords[token.value]
            yield token


def parse_masked(masked: str) -> Tree[Token]:
    """Parse text whose conditions are already masked (see `dsl.cel_regions`); raises Lark's
    UnexpectedInput."""
    return policy_parser().parse(masked)
