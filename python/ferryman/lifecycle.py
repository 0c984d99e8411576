"""The binary lifecycle (DESIGN.md section 2), in one place.

``uploadable -> hashable -> hashing -> signable -> signed``, ``destroyed`` from any state, and a
reset to ``uploadable`` from ``hashable`` or ``signable``. ``hashing`` is entered by the server
right after ``hashable`` (or on request); it ends in ``signable`` (digest matches) or back in
``hashable`` with an error. ``signable <-> signed`` follows the signature count: a binary is
``signed`` while valid signatures from at least ``threshold`` distinct active keys exist, and
falls back to ``signable`` when revocations bring it under.
"""

from __future__ import annotations

from enum import StrEnum

from ferryman.errors import InvalidTransition

__all__ = ["CLIENT_TRANSITIONS", "State", "allowed", "check_client_transition", "check_server_transition"]


class State(StrEnum):
    UPLOADABLE = "uploadable"
    HASHABLE = "hashable"
    HASHING = "hashing"
    SIGNABLE = "signable"
    SIGNED = "signed"
    DESTROYED = "destroyed"


# What a client may ask for with PATCH {"state": ...}, from each state.
CLIENT_TRANSITIONS: dict[State, frozenset[State]] = {
    State.UPLOADABLE: frozenset({State.HASHABLE, State.DESTROYED}),
    State.HASHABLE: frozenset({State.HASHING, State.UPLOADABLE, State.DESTROYED}),
    State.HASHING: frozenset({State.DESTROYED}),
    State.SIGNABLE: frozenset({State.UPLOADABLE, State.DESTROYED}),
    State.SIGNED: frozenset({State.DESTROYED}),
    State.DESTROYED: frozenset(),
}

# What the server itself does: finish hashing, and follow the signature count.
SERVER_TRANSITIONS: dict[State, frozenset[State]] = {
    State.HASHABLE: frozenset({State.HASHING}),
    State.HASHING: frozenset({State.SIGNABLE, State.HASHABLE}),
    State.SIGNABLE: frozenset({State.SIGNED}),
    State.SIGNED: frozenset({State.SIGNABLE}),
}


def allowed(state: State) -> list[str]:
    """The states a client may move a binary to from ``state``, sorted."""
    return sorted(CLIENT_TRANSITIONS[state])


def check_client_transition(current: State, target: State) -> None:
    """Raises InvalidTransition (409) unless a client may move ``current`` to ``target``."""
    if target not in CLIENT_TRANSITIONS[current]:
        raise InvalidTransition(
            f"cannot move a binary from {current} to {target}",
            allowed_transitions=allowed(current),
            state=str(current),
        )


def check_server_transition(current: State, target: State) -> None:
    if target not in SERVER_TRANSITIONS.get(current, frozenset()):
        raise InvalidTransition(f"cannot move a binary from {current} to {target}", state=str(current))
