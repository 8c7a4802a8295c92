"""Public identifiers: a resource prefix and 16 random lowercase letters or digits (`task_euyrvozb9302uw`)."""

from __future__ import annotations

import secrets
import string

__all__ = ["new_id"]

_ALPHABET = string.ascii_lowercase + string.digits


def new_id(prefix: str) -> str:
    """A new identifier such as `file_avyrvozb9302uwhq` (82 bits of randomness)."""
    return f"{prefix}_" + "".join(secrets.choice(_ALPHABET) for _ in range(16))
