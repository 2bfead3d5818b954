"""``dawm label``: voxel-wise z-scores of T1 and MTR against a normative reference, and the DAWM rule.

A DAWM voxel is normal-appearing white matter whose quantitative values are abnormal but not those
of a focal lesion. Modules: :mod:`config` (the settings), :mod:`normative` (controls / self
reference models), :mod:`zscores` (z maps and the joint chi2 score), :mod:`rules` (the rule, pure
array functions), :mod:`locations` (MAGNIMS-like location classes), :mod:`pipeline` (sessions and
datasets, BIDS derivatives).
"""
