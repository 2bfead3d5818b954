"""BIDS naming, dataset discovery and derivative writing. Only this package knows file names."""

from dawm.bids.entities import BidsName, parse_name
from dawm.bids.layout import SessionInputs, discover_sessions

__all__ = ["BidsName", "parse_name", "SessionInputs", "discover_sessions"]
