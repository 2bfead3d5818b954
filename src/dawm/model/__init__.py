"""``dawm train`` / ``dawm predict``: a 3D U-Net that labels normal / lesion / DAWM from T1w and/or FLAIR.

Modules, one concept each: :mod:`config` (TrainConfig), :mod:`data` (cases and subject-level
splits), :mod:`cache` (memory-mapped training arrays and the data fingerprint; canonical voxel order
is :mod:`dawm.image.orientation`), :mod:`sampling` (class-aware patches), :mod:`augment` (MONAI
augmentations), :mod:`networks` (the presets), :mod:`checkpoint` (exact-resume checkpoints),
:mod:`modeldir` (the self-describing model folder), :mod:`metrics` (Dice), :mod:`window` (sliding
window on the brain box), :mod:`train` (the loop), :mod:`inference` (normalisation, TTA, fold
ensembling, missing modalities), :mod:`volumes` (volumes per location class), :mod:`predict` (BIDS
datasets in, BIDS derivatives out) and :mod:`bundled` (the model shipped in the package, and
``export_model``). The simulator's truth as training targets is :mod:`dawm.simulate.truth`.
"""

from dawm.labels import DAWM_LABELS

#: Output classes of every dawm model (the ``dawm-label`` dseg convention, :data:`dawm.labels.DAWM_LABELS`).
LABELS = DAWM_LABELS
#: Input modality -> the preprocess derivative's suffix (``_space-session_desc-preproc_<suffix>``).
MODALITIES = {"t1w": "T1w", "flair": "FLAIR"}
