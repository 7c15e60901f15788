"""`alopex._alopex.database`, as in AlopexDB."""

from .._core import Database

__all__ = ["Database"]
