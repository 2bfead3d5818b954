"""Thin, honest image layer: loading with units/scaling made explicit, resampling, SimpleITK bridge.

Only this package reads NIfTI headers; other stages speak in arrays + 4x4 affines
(nibabel convention: voxel index -> RAS+ world millimetres).
"""
