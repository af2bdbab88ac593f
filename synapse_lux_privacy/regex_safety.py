"""Regular expressions that cannot backtrack catastrophically (R12 ``accounts.exempt``).

Python's ``re`` backtracks: ``(a+)+$`` takes exponential time on a user ID of a's that
does not match, and an ``exempt`` pattern is matched against every candidate account
of each sweep, so one such pattern would hang the sweep. The classic shapes are a
quantifier of variable count inside another one (``(a+)+``) and alternatives inside
one (``(a|aa)+``); ``nested_quantifier`` finds them in the parsed pattern so that the
configuration refuses them. It is a heuristic on shape, not a proof: it also refuses
harmless patterns of these shapes (``(bot|svc)+``), and it does not see polynomial
slowness of many ``.*`` in a row, which stays bounded on user IDs of at most 255
characters.
"""

from collections.abc import Iterator
from re import _constants, _parser  # type: ignore[attr-defined]

_BACKTRACKING_REPEATS = (_constants.MAX_REPEAT, _constants.MIN_REPEAT)
# Possessive repetitions and atomic groups never give back what they matched.
_NON_BACKTRACKING = (_constants.POSSESSIVE_REPEAT, _constants.ATOMIC_GROUP)


def backtracks_catastrophically(pattern: str) -> bool:
    """Whether a repetition that can repeat a variable number of times holds another
    repetition of variable count (``(a+)+``, ``(a*b?)*``, ``(x+){2,9}``) or alternatives
    (``(a|aa)+``). ``(a+)?``, ``(a{2,3}){2}`` and ``(a|b)+`` (a character set) are fine.
    The pattern must compile."""
    return _nested(_parser.parse(pattern), inside=False)


def _nested(items: object, inside: bool) -> bool:
    for op, av in items:  # type: ignore[attr-defined]
        if op in _NON_BACKTRACKING:
            continue
        if op is _constants.BRANCH and inside:
            return True
        if op in _BACKTRACKING_REPEATS:
            low, high, sub = av
            if inside and low != high:
                return True
            if _nested(sub, inside or (low != high and high > 1)):
                return True
            continue
        if any(_nested(sub, inside) for sub in _subpatterns(av)):
            return True
    return False


def _subpatterns(value: object) -> Iterator[object]:
    """The sub-patterns in an opcode's argument (groups, branches, look-arounds)."""
    if isinstance(value, _parser.SubPattern):
        yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _subpatterns(item)
