"""`alopex._alopex.transaction`, as in AlopexDB."""

from .._core import Transaction

__all__ = ["Transaction"]
