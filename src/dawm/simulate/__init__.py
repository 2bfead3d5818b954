"""A realistic synthetic MS cohort in BIDS with known truth (``dawm simulate``).

Pipeline per subject: template anatomy warped into a new brain (``anatomy``), lesions and DAWM
with their evolution (``pathology``), tissue property maps T1/T2/PD/MTR (``properties``), images
from signal equations (``signal``) acquired per scanner profile (``scanners``, ``acquisition``),
written as BIDS with truth derivatives (``cohort``).
"""

from dawm.simulate.config import SimulationConfig

__all__ = ["SimulationConfig"]
