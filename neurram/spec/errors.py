"""Errors a chip raises, whatever answers: the fast model, the RTL behind the protocol, a board."""

__all__ = ["ChipError"]


class ChipError(RuntimeError):
    """The chip refused a request or reported a fault; the message names it and the fix."""
