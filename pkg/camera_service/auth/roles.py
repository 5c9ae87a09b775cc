"""Roles and the permissions each one reports to clients (PROTOCOL 4.1).

Roles are ordered; the dispatch table stores the level a method needs so that the check on every
request is one integer comparison instead of a lookup by name.
"""

from __future__ import annotations

ROLE_LEVELS: dict[str, int] = {"viewer": 1, "operator": 2, "admin": 3}

LEVEL_NAMES: dict[int, str] = {level: name for name, level in ROLE_LEVELS.items()}

PERMISSIONS: dict[str, tuple[str, ...]] = {
    "viewer": ("view",),
    "operator": ("view", "control"),
    "admin": ("view", "control", "admin"),
}

ROLE_NAMES: tuple[str, ...] = tuple(sorted(ROLE_LEVELS, key=ROLE_LEVELS.__getitem__))


def role_level(name: str) -> int:
    """Level of the role called `name`; unknown names raise ValueError.

    Callers validating user input (token claims, CLI arguments) rely on the exception rather
    than on a default, so that a typo can never grant or silently drop a role.
    """
    try:
        return ROLE_LEVELS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown role: {name!r} (expected one of {', '.join(ROLE_NAMES)})"
        ) from None
