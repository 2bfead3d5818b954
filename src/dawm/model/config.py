"""Settings of ``dawm train`` (one pydantic model, saved inside ``model.json``).

Three presets fix the network and the defaults that depend on the hardware:

* ``cpu-small``: MONAI ``UNet`` (about 4.8 M parameters), 64^3 patches, batch 2 - trains on a laptop CPU;
* ``gpu``: nnU-Net-sized MONAI ``DynUNet`` (about 31 M parameters), 128^3 patches, batch 2, bf16
  autocast, AdamW 3e-4. nnU-Net's SGD (lr 1e-2, Nesterov 0.99) is available (``optimizer="sgd"``)
  but collapsed to all-background in a 1 500-iteration run on an H200 where AdamW 3e-4 learned
  (``benchmarks/results/model_gpu_*``): dawm runs are short, nnU-Net's 250 000 iterations are not;
* ``tiny``: a 0.1 M-parameter UNet for smoke tests and CI (not for real use).

Fields left ``None`` take the preset's value (:meth:`TrainConfig.resolved`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from dawm.bids.derivative_files import LabelFiles, PreprocessFiles
from dawm.config import StageConfig

Inputs = Literal["t1w", "flair", "t1w+flair"]
Preset = Literal["cpu-small", "gpu", "tiny"]
SplitMode = Literal["kfold", "loso"]

PRESET_DEFAULTS: dict[str, dict] = {
    "cpu-small": {"patch_size": (64, 64, 64), "batch_size": 2, "lr": 1e-3, "optimizer": "adamw", "iterations_per_epoch": 50},
    "gpu": {"patch_size": (128, 128, 128), "batch_size": 2, "lr": 3e-4, "optimizer": "adamw", "iterations_per_epoch": 250},
    "tiny": {"patch_size": (32, 32, 32), "batch_size": 2, "lr": 3e-3, "optimizer": "adamw", "iterations_per_epoch": 10},
}


class TrainConfig(StageConfig):
    """What ``dawm train`` does. Sizes are voxels of the preprocess session grid."""

    model_config = ConfigDict(extra="forbid")

    inputs: Inputs = Field("t1w+flair", description="input channels, in this order")
    preset: Preset = Field("cpu-small", description="network and hardware defaults")
    patch_size: tuple[int, int, int] | None = Field(
        None, description="training patch (voxels); divisible by 16 (cpu-small), 32 (gpu) or 8 (tiny)"
    )
    batch_size: int | None = Field(None, ge=1)
    lr: float | None = Field(None, gt=0, description="initial learning rate")
    optimizer: Literal["adamw", "sgd"] | None = Field(
        None, description="adamw (every preset's default) or sgd (Nesterov 0.99, as nnU-Net); both with poly decay"
    )
    weight_decay: float = Field(3e-5, ge=0)
    iterations_per_epoch: int | None = Field(None, ge=1)
    max_epochs: int = Field(100, ge=1)
    patience: int = Field(10, ge=1, description="stop after this many validations without a better validation Dice")
    val_every: int = Field(1, ge=1, description="validate (sliding window on whole volumes) every N epochs")
    folds: int = Field(5, ge=2, description="number of k-fold cross-validation folds (kfold split)")
    split: SplitMode = Field("kfold", description="kfold (stratified by scanner and group) or loso (leave one scanner out)")
    test_fraction: float = Field(0.0, ge=0.0, lt=0.9, description="subjects held out of every fold as a test set")
    modality_dropout: float = Field(
        0.2, ge=0.0, lt=1.0, description="probability of zeroing one input channel of a patch (two inputs only)"
    )
    class_fractions: tuple[float, float, float] = Field(
        (1 / 3, 1 / 3, 1 / 3), description="patches centred on lesion, DAWM, any brain voxel"
    )
    lesion_sampling: Literal["voxel", "lesion"] = Field(
        "voxel",
        description="centre of a lesion patch: a lesion voxel drawn uniformly ('voxel': large lesions dominate) or a lesion "
        "drawn uniformly, then one of its voxels ('lesion': small lesions as often as large ones; dawm.model.sampling)",
    )
    augment: bool = Field(True, description="spatial and intensity augmentation (see dawm.model.augment)")
    domain_randomization: bool = Field(
        True,
        description="with augment: the stronger, SynthSeg-like intensity and geometry randomisation for "
        "real clinical contrasts (random monotone curves, lesion/DAWM contrast, thick slices on either channel, "
        "scale 0.7-1.3); False keeps the milder simulator-only pipeline (short runs on small cohorts)",
    )
    deep_supervision: bool = Field(False, description="gpu preset: DynUNet deep supervision")
    seed: int = Field(0, ge=0)
    amp: bool = Field(True, description="mixed precision (CUDA only; ignored on CPU)")
    compile: bool = Field(False, description="torch.compile the network (CUDA only)")
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes")
    labels: str = Field(LabelFiles.NAME, description="derivatives/<name> holding the training targets (*_space-session_desc-dawm_dseg)")
    dawm_target: Literal["soft", "hard"] = Field(
        "soft",
        description="soft: the DAWM target of a voxel is the labels' label-DAWM_probseg (0-1) where the labels "
        "hold one (lesions stay a hard class; a session without a probseg falls back to its dseg), so uncertain borders of "
        "a diffuse class do not teach 'background'; hard: the one-hot dseg",
    )
    preprocess: str = Field(PreprocessFiles.NAME, description="derivatives/<name> of dawm preprocess")
    sw_batch_size: int = Field(2, ge=1, description="sliding-window batch at validation and prediction")
    inference_patch_size: tuple[int, int, int] | None = Field(
        None, description="sliding-window size at validation and prediction (default: patch_size)"
    )

    @property
    def inference_roi(self) -> tuple[int, int, int]:
        """The sliding-window size (``inference_patch_size`` or ``patch_size``)."""
        roi = self.inference_patch_size or self.patch_size
        if roi is None:
            raise ValueError("resolve the config first (patch_size is None)")
        return tuple(roi)  # type: ignore[return-value]

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if abs(sum(self.class_fractions) - 1.0) > 1e-6 or min(self.class_fractions) < 0:
            raise ValueError(f"class_fractions must be >= 0 and sum to 1, got {self.class_fractions}")
        div = {"cpu-small": 16, "gpu": 32, "tiny": 8}[self.preset]
        for name in ("patch_size", "inference_patch_size"):
            size = getattr(self, name)
            if size is not None and any(p % div for p in size):
                raise ValueError(f"{name} {size} must be divisible by {div} for the {self.preset} preset")
        return self

    @property
    def channels(self) -> list[str]:
        """Input modalities in channel order, e.g. ``["t1w", "flair"]``."""
        return self.inputs.split("+")

    def resolved(self) -> TrainConfig:
        """A copy with every ``None`` field set from the preset."""
        values = self.model_dump()
        for key, value in PRESET_DEFAULTS[self.preset].items():
            if values.get(key) is None:
                values[key] = value
        return TrainConfig.model_validate(values)
