"""One setting at odds with the policy, as ``check-config`` and the start-up log report it."""

import attrs


@attrs.frozen
class Finding:
    """A setting, its value, what it should be, and the rule it concerns (R1-R15)."""

    key: str
    value: str
    expected: str
    rule: str

    def __str__(self) -> str:
        return f"{self.key} is {self.value}; it should be {self.expected} ({self.rule})"
