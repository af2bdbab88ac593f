"""Reading one homeserver.yaml file for ``check-config``: Synapse's reading, and what it hides.

Synapse reads its files with PyYAML's ``safe_load`` (YAML 1.1), which resolves two
things silently that an operator rarely means, so ``check-config`` reports them as
findings naming the key:

- a key given twice in one mapping: the last one wins (``dry_run: true`` above
  ``dry_run: false`` is a real sweep);
- a plain scalar of digits with colons: YAML 1.1 reads ``1:30`` as the base-60
  number 90 (``sweep_batch_size: 1:30``), where YAML 1.2 and most readers see text.

An integer with more digits than Python converts (``sys.get_int_max_str_digits``)
stops Synapse at start-up: it raises ``UnreadableYaml`` naming the key and line.
"""

import sys

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from synapse_lux_privacy.finding import Finding
from synapse_lux_privacy.units import dotted

_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_MERGE = "tag:yaml.org,2002:merge"
_SYNTAX = "YAML, as Synapse reads it"


class UnreadableYaml(ValueError):
    """The file parses but Synapse could not load it (the message names key and line)."""


def read_yaml(path: str) -> tuple[object, list[Finding]]:
    """The document in ``path`` as Synapse loads it, and the findings about its text.

    Raises OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError or UnreadableYaml.
    """
    with open(path, encoding="utf-8") as file:
        text = file.read()
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    findings = _Walk(path).findings(root)
    return yaml.safe_load(text), findings


class _Walk:
    """Every node once (an alias is not followed twice), with its key path."""

    def __init__(self, path: str) -> None:
        self._file = path
        self._seen: set[int] = set()
        self._found: list[Finding] = []

    def findings(self, root: Node | None) -> list[Finding]:
        pending: list[tuple[Node, tuple[str, ...]]] = [] if root is None else [(root, ())]
        while pending:
            node, keys = pending.pop()
            if id(node) in self._seen:
                continue
            self._seen.add(id(node))
            if isinstance(node, MappingNode):
                pending.extend(self._mapping(node, keys))
            elif isinstance(node, SequenceNode):
                pending.extend((item, (*keys, str(i))) for i, item in enumerate(node.value))
            elif isinstance(node, ScalarNode):
                self._scalar(node, keys)
        return self._found

    def _mapping(
        self, node: MappingNode, keys: tuple[str, ...]
    ) -> list[tuple[Node, tuple[str, ...]]]:
        first_line: dict[str, int] = {}
        children = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                children.append((value_node, keys))
                continue
            name = key_node.value if isinstance(key_node, ScalarNode) else "?"
            line = key_node.start_mark.line + 1
            if isinstance(key_node, ScalarNode) and name in first_line:
                self._found.append(
                    Finding(
                        dotted((*keys, name)),
                        f"given twice ({self._file} lines {first_line[name]} and {line}) and "
                        "Synapse silently takes the last one",
                        "given once",
                        _SYNTAX,
                    )
                )
            first_line.setdefault(name, line)
            children.append((value_node, (*keys, name)))
        return children

    def _scalar(self, node: ScalarNode, keys: tuple[str, ...]) -> None:
        if node.style is not None or node.tag not in (_INT, _FLOAT):
            return
        raw: str = node.value
        line = node.start_mark.line + 1
        limit = sys.get_int_max_str_digits()
        digits = len(_decimal_digits(raw)) if node.tag == _INT else 0
        if limit and digits > limit:
            raise UnreadableYaml(
                f"{self._file} line {line}: {dotted(keys)} is a number of {digits:,} digits, "
                f"more than Synapse can read ({limit:,})"
            )
        if ":" in raw:
            self._found.append(
                Finding(
                    dotted(keys),
                    f"{raw} ({self._file} line {line}), which YAML 1.1 reads as the base-60 "
                    f"number {yaml.safe_load(raw)}",
                    f'the number meant, written plainly, or "{raw}" quoted if text is meant',
                    _SYNTAX,
                )
            )


def _decimal_digits(raw: str) -> str:
    """The digits PyYAML hands to ``int()`` in base 10 (the limit on digits applies to
    that base only: hexadecimal, octal, binary and base-60 are converted otherwise)."""
    text = raw.replace("_", "").lstrip("+-")
    if ":" in text or text.startswith(("0b", "0x")) or (text.startswith("0") and text != "0"):
        return ""
    return text
