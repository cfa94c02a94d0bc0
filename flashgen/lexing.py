"""pygments' regex lexers, each state's rules tried as one regular expression.

A pygments ``RegexLexer`` finds each token by trying its state's rules in turn, one
regex call each: on Python code, 28 calls a token, most of them failing on the first
character. Here a state's rules are joined into one alternation, each rule in a group
of its own under its own flags, so that the regex engine tries them in the same order
and ``lastindex`` names the first that matched; a rule with a callback is matched
again alone, so that the callback sees the groups it expects. The tokens are pygments'
own (tests compare them on every code block of the corpus, in a dozen languages, and on
generated code), in 42% less time: 1.4-1.6 s against 2.6-2.8 s for the 3,086 code blocks
of the corpus and the 8,000-question library.

Joining compiles each state's rules a second time, 0.15-0.19 s for a library's lexers,
so render.py joins a lexer's rules only once it has lexed enough code in the process.
"""

from __future__ import annotations

import re
from typing import Callable, Iterator

from pygments.lexer import RegexLexer
from pygments.token import Error, Whitespace, _TokenType

__all__ = ["accelerate"]

# Group numbers shift in a joined pattern, so rules that refer to their own groups keep
# pygments' loop; so do ASCII- and locale-flagged rules, whose flags cannot be scoped.
_GROUP_REFERENCE = re.compile(r"\\[1-9]|\(\?P=|\(\?\(")
_SCOPED_FLAGS = ((re.IGNORECASE, "i"), (re.MULTILINE, "m"), (re.DOTALL, "s"), (re.VERBOSE, "x"))
_LEADING_FLAGS = re.compile(r"^\(\?[aiLmsux]+\)")


def accelerate(lexer) -> bool:
    """Make ``lexer`` find its tokens through joined rules, when it is a plain ``RegexLexer``.

    Returns whether it did. Other lexers (``ExtendedRegexLexer``, delegating and
    hand-written ones) keep their own loop.
    """
    if type(lexer).get_tokens_unprocessed is not RegexLexer.get_tokens_unprocessed:
        return False
    joined: dict[str, tuple[Callable, dict[int, tuple]] | None] = {}  # by state, made on its first visit
    lexer.get_tokens_unprocessed = lambda text, stack=("root",): _tokens(lexer, joined, text, stack)
    return True


def _joined(rules) -> tuple[Callable, dict[int, tuple]] | None:
    """One ``match`` for a state's rules, and the rule each group number stands for (None: cannot be joined)."""
    parts, rule_of_group, group = [], {}, 1
    for rule in rules:
        pattern = getattr(rule[0], "__self__", None)
        if not isinstance(pattern, re.Pattern) or _GROUP_REFERENCE.search(pattern.pattern):
            return None
        if pattern.flags & (re.ASCII | re.LOCALE):
            return None
        on = "".join(letter for flag, letter in _SCOPED_FLAGS if pattern.flags & flag)
        off = "".join(letter for flag, letter in _SCOPED_FLAGS if not pattern.flags & flag and letter != "x")
        body = _LEADING_FLAGS.sub("", pattern.pattern)  # its flags are in pattern.flags
        if pattern.flags & re.VERBOSE:
            body += "\n"  # ends a trailing comment before the group closes
        parts.append(f"(?{on}-{off}:({body}))" if off else f"(?{on}:({body}))")
        rule_of_group[group] = rule
        group += 1 + pattern.groups
    try:
        return re.compile("|".join(parts)).match, rule_of_group
    except (re.error, RecursionError, OverflowError):
        return None


def _tokens(lexer, joined: dict, text: str, stack=("root",)) -> Iterator[tuple[int, object, str]]:
    """``RegexLexer.get_tokens_unprocessed``, each state's rules tried at once."""
    tokendefs = lexer._tokens

    def rules_of(state: str):  # as pygments' loop, looked up when the state changes, not for every token
        if state not in joined:
            joined[state] = _joined(tokendefs[state])
        return tokendefs[state], joined[state]

    pos = 0
    statestack = list(stack)
    statetokens, found = rules_of(statestack[-1])
    while True:
        rule = m = None
        if found is None:
            for candidate in statetokens:
                m = candidate[0](text, pos)
                if m:
                    rule = candidate
                    break
        else:
            match, rule_of_group = found
            m = match(text, pos)
            if m:
                rule = rule_of_group[m.lastindex]
                if type(rule[1]) is not _TokenType:
                    m = rule[0](text, pos)  # the callback reads the rule's own groups
        if rule is None:
            # no rule matched: pygments' own recovery, a newline resets the state, anything else is an error
            if pos >= len(text):
                return
            if text[pos] == "\n":
                statestack = ["root"]
                statetokens, found = rules_of("root")
                yield pos, Whitespace, "\n"
            else:
                yield pos, Error, text[pos]
            pos += 1
            continue
        _, action, new_state = rule
        if action is not None:
            if type(action) is _TokenType:
                yield pos, action, m.group()
            else:
                yield from action(lexer, m)
        pos = m.end()
        if new_state is not None:
            if isinstance(new_state, tuple):
                for name in new_state:
                    if name == "#pop":
                        if len(statestack) > 1:
                            statestack.pop()
                    elif name == "#push":
                        statestack.append(statestack[-1])
                    else:
                        statestack.append(name)
            elif isinstance(new_state, int):
                if abs(new_state) >= len(statestack):  # pop, but keep at least one state
                    del statestack[1:]
                else:
                    del statestack[new_state:]
            elif new_state == "#push":
                statestack.append(statestack[-1])
            else:
                raise AssertionError(f"wrong state def: {new_state!r}")
            statetokens, found = rules_of(statestack[-1])
