"""Secrets are compared in constant time: no ``==`` or ``!=`` in Hearth's code has a secret, a token,
a password or a signature on either side (they go through ``hmac.compare_digest``)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bridge", "moderation", "spaces", "config")
SECRETISH = re.compile(r"secret|token|passw|signature|sig\b|hmac|api_key|mac\b", re.IGNORECASE)

# Comparisons whose operands are named like secrets but are not: (file, source of the comparison, why).
NOT_SECRETS = {
    ("bridge/gateway.py", "resp.end == token", "a /messages pagination token, public to the client"),
}


def _names(node: ast.AST) -> str:
    return " ".join(
        n.id if isinstance(n, ast.Name) else n.attr if isinstance(n, ast.Attribute) else str(n.value)
        for n in ast.walk(node)
        if isinstance(n, ast.Name | ast.Attribute)
        or (isinstance(n, ast.Constant) and isinstance(n.value, str))
    )


def equality_on_secrets(source: str) -> list[tuple[int, str]]:
    """(line, source) of every ``==``/``!=`` with a secret-like name among its operands."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Compare) or not any(
            isinstance(op, ast.Eq | ast.NotEq) for op in node.ops
        ):
            continue
        operands = [node.left, *node.comparators]
        # a name compared with a literal (a scheme, a kind) is not a secret being checked
        if any(isinstance(o, ast.Constant) for o in operands):
            continue
        if any(SECRETISH.search(_names(o)) for o in operands):
            found.append((node.lineno, ast.get_source_segment(source, node) or ""))
    return found


def test_the_scanner_finds_a_plain_comparison_of_secrets():
    assert equality_on_secrets("ok = given_token == settings.secret\n") == [
        (1, "given_token == settings.secret")
    ]
    assert equality_on_secrets("ok = hmac.compare_digest(a, secret)\n") == []


def test_no_secret_is_compared_with_equality():
    offenders = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = str(path.relative_to(ROOT))
            for line, text in equality_on_secrets(path.read_text()):
                if not any(rel == f and text == t for f, t, _ in NOT_SECRETS):
                    offenders.append(f"{rel}:{line}: {text}")
    assert offenders == []
