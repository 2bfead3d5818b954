"""The training loop of ``dawm train`` (one fold at a time; DDP when launched by ``torchrun``).

Per fold: patches from :class:`dawm.model.sampling.PatchSampler` over the fold's training cases,
augmented (:mod:`dawm.model.augment`), Dice + cross-entropy (MONAI ``DiceCELoss``, softmax) against
per-class target probabilities (:func:`soft_targets`: lesions one-hot, DAWM the labels' probability
map with ``dawm_target="soft"``), AdamW or SGD-Nesterov with a poly learning-rate decay (``PolynomialLR``,
:func:`lr_schedule`) stepped per iteration. Every ``val_every`` epochs the validation cases are segmented whole with a sliding window:
the pooled lesion Dice (argmax) and the DAWM Dice at the best DAWM probability threshold
(:mod:`dawm.model.decision`) are computed; their mean drives ``best.pt`` and early stopping, and the
best epoch's threshold is saved as the fold's ``dawm_threshold``. ``last.pt``
(with optimizer, scheduler and RNG states) is written every epoch, so ``resume`` continues exactly
where an interrupted run stopped. AMP (bf16) and ``torch.compile`` are used on CUDA only.
"""

from __future__ import annotations

import csv
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from monai.losses import DeepSupervisionLoss, DiceCELoss
from torch.utils.data import DataLoader, Dataset

import dawm
from dawm.bids.derivative_files import PreprocessFiles
from dawm.errors import InputError
from dawm.metrics import class_counts, pooled_dice
from dawm.model import LABELS, MODALITIES
from dawm.model.augment import augment_patch, modality_dropout, training_transforms
from dawm.model.cache import NORMALISATION, CachedCase, build_cache
from dawm.model.checkpoint import load_checkpoint, save_checkpoint, unwrap
from dawm.model.config import TrainConfig
from dawm.model.data import Case, cases_of, discover_cases, load_or_make_split
from dawm.model.decision import calibrate_dawm_threshold, threshold_counts
from dawm.model.modeldir import fold_dir, git_commit, read_model_json, write_model_json
from dawm.model.networks import build_network
from dawm.model.sampling import PatchSampler
from dawm.model.window import segment_volume

log = logging.getLogger(__name__)
T = TypeVar("T")
LOG_COLUMNS = ("fold", "epoch", "train_loss", "val_dice_lesion", "val_dice_dawm", "val_dice", "lr", "seconds")


# --------------------------------------------------------------------------------------------
# distributed helpers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dist:
    """Where this process stands: ``rank`` of ``world`` processes, its ``device``."""

    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def main_first(dist: Dist, make: Callable[[], T]) -> T:
    """``make()`` on the main rank first, then on the others (a barrier between): files that
    ``make`` writes (the training cache, the split) are written once, and the other ranks read them."""
    if dist.world > 1 and not dist.main:
        _barrier()
    result = make()
    if dist.world > 1 and dist.main:
        _barrier()
    return result


def _barrier() -> None:
    import torch.distributed as td

    td.barrier()


def setup_distributed() -> Dist:
    """Join the process group when launched by ``torchrun`` (``WORLD_SIZE`` > 1); pick the device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    device = torch.device(f"cuda:{local}") if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world > 1:
        import torch.distributed as td

        if not td.is_initialized():
            td.init_process_group("nccl" if cuda else "gloo")
        return Dist(td.get_rank(), world, device)
    return Dist(0, 1, device)


def end_distributed(dist: Dist) -> None:
    """Wait for every rank, then leave the process group. A process that exits still in a gloo
    group can abort at interpreter shutdown ("terminate called without an active exception")."""
    import torch.distributed as td

    if dist.world > 1 and td.is_initialized():
        _barrier()
        td.destroy_process_group()


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------


class PatchDataset(Dataset):
    """Item ``i`` of the current ``epoch``: patch ``i`` of the sampler, augmented with a seed from
    ``(seed, epoch, i)`` and with modality dropout. Returns ``{"image": (C, *P) float32,
    "label": (1, *P) int64, "target": (3, *P) float32}`` (:func:`soft_targets`). Same item, same
    tensors, whichever worker or rank makes it."""

    def __init__(
        self,
        sampler: PatchSampler,
        patch_size: tuple[int, int, int],
        *,
        length: int,
        seed: int,
        augment: bool = True,
        dropout_p: float = 0.0,
        domain_randomization: bool = True,
    ) -> None:
        self.sampler, self.length, self.seed, self.dropout_p = sampler, length, seed, dropout_p
        self.transform = training_transforms(patch_size, enabled=augment, domain_randomization=domain_randomization)
        self.epoch = 0

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        patch = self.sampler.sample(int(i), self.epoch)
        rng = np.random.default_rng([self.seed, self.epoch, int(i), 1])
        image = modality_dropout(patch.image, self.dropout_p, rng)
        img, lab, dawm = augment_patch(self.transform, image, patch.label, int(rng.integers(2**31)), dawm=patch.dawm, tissue=patch.tissue)
        return {"image": img, "label": lab, "target": soft_targets(lab, dawm)}


def soft_targets(label: torch.Tensor, dawm: torch.Tensor) -> torch.Tensor:
    """Per-class target probabilities (3, *P) float32 from ``label`` (1, *P) 0/1/2 and the DAWM
    target ``dawm`` (1, *P) 0-1: lesion = label == 1 (a hard class), DAWM = ``dawm`` off lesions,
    normal = the rest. With a hard DAWM target (``dawm == (label == 2)``) this is the one-hot label."""
    lesion = (label == 1).float()
    d = dawm.float().clamp(0.0, 1.0) * (1.0 - lesion)
    return torch.cat([1.0 - lesion - d, lesion, d], dim=0)


def shard(length: int, dist: Dist) -> list[int]:
    """Item indices of this rank (every ``world``-th, like ``DistributedSampler(shuffle=False)``)."""
    return list(range(dist.rank, length, dist.world))


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------


@torch.no_grad()
def validate(net: torch.nn.Module, cases: list[CachedCase], roi_size, device: torch.device, *, sw_batch_size: int = 2) -> dict[str, float]:
    """Pooled Dice of lesion (argmax) and DAWM (at the calibrated threshold) over whole validation
    volumes inside the brain, and that ``dawm_threshold`` (None when the labels hold no DAWM).

    ``val_dice`` (what selects the best checkpoint) averages the classes that the validation labels
    hold: with no DAWM there, any DAWM the network predicts would score 0 and pull the mean down,
    so the selection would favour networks that never predict DAWM."""
    counts, sweep = [], 0
    for c in cases:
        brain = np.asarray(c.brain) > 0
        probs = segment_volume([net], np.asarray(c.image), brain, roi_size, device=device, sw_batch_size=sw_batch_size)
        pred = probs.argmax(0)
        pred[~brain] = 0
        truth = np.asarray(c.label)
        counts.append(class_counts(pred, truth, labels=(1,)))
        sweep = sweep + threshold_counts(probs * brain, truth)
    lesion = pooled_dice(counts)[1]
    threshold, dawm_ = calibrate_dawm_threshold(sweep)
    scored = [v for v, held in ((lesion, sum(c[1][2] for c in counts) > 0), (dawm_, threshold is not None)) if held]
    return {
        "val_dice_lesion": lesion,
        "val_dice_dawm": dawm_,
        "val_dice": float(np.mean(scored)) if scored else 0.0,
        "dawm_threshold": threshold,
    }


# --------------------------------------------------------------------------------------------
# logging
# --------------------------------------------------------------------------------------------


class RunLog:
    """Append rows to ``log.csv`` (all folds) and to TensorBoard when ``torch.utils.tensorboard``
    imports. On resume the fold's rows from ``start_epoch`` on are dropped first."""

    def __init__(self, model_dir: Path, fold: int, start_epoch: int) -> None:
        self.path = model_dir / "log.csv"
        rows = []
        if self.path.exists():
            with self.path.open() as fh:
                rows = [r for r in csv.DictReader(fh) if not (int(r["fold"]) == fold and int(r["epoch"]) >= start_epoch)]
        with self.path.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=LOG_COLUMNS)
            w.writeheader()
            w.writerows(rows)
        self.fold = fold
        self.tb = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(fold_dir(model_dir, fold) / "tensorboard"))
        except Exception:  # noqa: BLE001 - tensorboard is optional
            self.tb = None

    def write(self, row: dict) -> None:
        with self.path.open("a", newline="") as fh:
            csv.DictWriter(fh, fieldnames=LOG_COLUMNS).writerow({k: row.get(k, "") for k in LOG_COLUMNS})
        if self.tb is not None:
            for k, v in row.items():
                if k not in ("fold", "epoch") and isinstance(v, float) and np.isfinite(v):
                    self.tb.add_scalar(k, v, row["epoch"])
            self.tb.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


# --------------------------------------------------------------------------------------------
# one fold
# --------------------------------------------------------------------------------------------


#: Power of the poly learning-rate schedule (nnU-Net's): lr = lr0 (1 - step / total steps) ** 0.9.
LR_POWER = 0.9


def lr_schedule(optimizer: torch.optim.Optimizer, total_steps: int) -> torch.optim.lr_scheduler.PolynomialLR:
    """The poly schedule over ``total_steps`` optimizer steps (``scheduler.step()`` after each):
    step s (0-based) runs at ``lr0 (1 - s / total_steps) ** 0.9``, the last at ``lr0 (1 / total_steps) ** 0.9``;
    after it the schedule reads 0 (the last epoch's ``lr`` in ``log.csv``; the hand-written LambdaLR before
    it kept the last step's value there). Every step's rate equals that closed form to float64 rounding."""
    return torch.optim.lr_scheduler.PolynomialLR(optimizer, total_iters=total_steps, power=LR_POWER)


def stretch_schedule(scheduler: torch.optim.lr_scheduler.PolynomialLR, total_steps: int, *, stored: dict | None) -> None:
    """After a resume (``stored``: the checkpoint's scheduler state): when the run now has another
    number of steps (``max_epochs`` raised) or the checkpoint predates :func:`lr_schedule`, continue
    on the poly curve of ``total_steps`` from the step reached (PolynomialLR itself is recursive:
    it would go on from the learning rate reached, towards the old end)."""
    if stored is not None and stored.get("total_iters") == total_steps:
        return
    scheduler.total_iters = total_steps
    step = scheduler.last_epoch
    for group, base in zip(scheduler.optimizer.param_groups, scheduler.base_lrs):
        group["lr"] = base * (1.0 - min(step, total_steps) / total_steps) ** LR_POWER
    scheduler._last_lr = [group["lr"] for group in scheduler.optimizer.param_groups]  # what get_last_lr() reports


def _optimizer(config: TrainConfig, params) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=0.99, nesterov=True, weight_decay=config.weight_decay)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def _loss(config: TrainConfig) -> Callable:
    base = DiceCELoss(to_onehot_y=False, softmax=True, include_background=True, smooth_nr=1e-5, smooth_dr=1e-5)
    if config.preset == "gpu" and config.deep_supervision:
        return DeepSupervisionLoss(base, weight_mode="exp")
    return base


def _forward_loss(net, loss_fn, image, label, deep: bool):
    out = net(image)
    if deep and out.dim() == 6:  # DynUNet training output (B, heads, K, ...)
        return loss_fn(list(torch.unbind(out, dim=1)), label)
    return loss_fn(out, label)


def train_fold(
    fold: int,
    config: TrainConfig,
    model_dir: Path,
    train_cases: list[CachedCase],
    val_cases: list[CachedCase],
    *,
    resume: bool = False,
    dist: Dist | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    epoch_budget: int | None = None,
) -> dict:
    """Train one fold; returns ``{"best_epoch", "best_val_dice", "epochs", "stopped_early"}``.

    ``config`` must be resolved. ``progress(fold_text, done, total)`` is called every iteration.
    ``epoch_budget``: run at most this many epochs in this call (e.g. a cluster job's wall time),
    then return; a later ``resume`` continues exactly as if never stopped.
    """
    dist = dist or Dist()
    fdir = fold_dir(model_dir, fold)
    fdir.mkdir(parents=True, exist_ok=True)
    seed = config.seed + 1000 * fold
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    cuda = dist.device.type == "cuda"
    amp = config.amp and cuda
    if cuda:  # fixed patch sizes: let cuDNN pick its fastest kernels (GPU runs are not bit-exact anyway)
        torch.backends.cudnn.benchmark = True
    net = build_network(config.preset, len(config.channels), len(LABELS), deep_supervision=config.deep_supervision).to(dist.device)
    optimizer = _optimizer(config, net.parameters())
    total_steps = config.max_epochs * config.iterations_per_epoch
    scheduler = lr_schedule(optimizer, total_steps)
    start_epoch, state = 0, {"best_val_dice": -1.0, "best_epoch": -1, "bad_validations": 0}
    last = fdir / "last.pt"
    if resume and last.exists():
        payload = load_checkpoint(last, model=net, optimizer=optimizer, scheduler=scheduler, map_location=dist.device)
        stretch_schedule(scheduler, total_steps, stored=payload.get("scheduler"))
        start_epoch, state = payload["epoch"], dict(payload["state"])
        log.info("fold %d: resumed after epoch %d", fold, start_epoch)
    elif last.exists() and not resume:
        raise InputError(f"{last} exists: resume it with --resume, or train into another --model-dir")
    model: torch.nn.Module = net
    if dist.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(net, device_ids=[dist.device.index] if cuda else None)
    if config.compile and cuda:
        model = torch.compile(model)
    loss_fn = _loss(config)
    deep = config.preset == "gpu" and config.deep_supervision

    region = tuple(int(round(p * 1.25 / 2) * 2) for p in config.patch_size) if config.augment else tuple(config.patch_size)
    sampler = PatchSampler(train_cases, region, fractions=config.class_fractions, seed=seed, lesion_sampling=config.lesion_sampling)
    per_rank = config.iterations_per_epoch * config.batch_size
    dataset = PatchDataset(
        sampler,
        config.patch_size,
        length=per_rank * dist.world,
        seed=seed,
        augment=config.augment,
        domain_randomization=config.domain_randomization,
        dropout_p=config.modality_dropout if len(config.channels) > 1 else 0.0,
    )
    runlog = RunLog(model_dir, fold, start_epoch) if dist.main else None
    stopped_early = state.get("bad_validations", 0) >= config.patience
    epochs_done = start_epoch
    end_epoch = config.max_epochs if epoch_budget is None else min(config.max_epochs, start_epoch + epoch_budget)
    for epoch in range(start_epoch, end_epoch):
        if stopped_early:
            break
        t0 = time.perf_counter()
        dataset.epoch = epoch
        loader = DataLoader(
            dataset,
            batch_size=config.batch_size,
            sampler=shard(len(dataset), dist),
            num_workers=config.num_workers,
            pin_memory=cuda,
            drop_last=True,
        )
        model.train()
        losses = []
        for it, batch in enumerate(loader):
            image, label = batch["image"].to(dist.device, non_blocking=True), batch["target"].to(dist.device, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                loss = _forward_loss(model, loss_fn, image, label, deep)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 12.0)
            optimizer.step()
            scheduler.step()
            losses.append(float(loss.detach()))
            if progress is not None:
                progress(f"fold {fold} epoch {epoch + 1}/{config.max_epochs}", epoch * config.iterations_per_epoch + it + 1, total_steps)
        row = {"fold": fold, "epoch": epoch, "train_loss": float(np.mean(losses)), "lr": float(scheduler.get_last_lr()[0])}
        validated = (epoch + 1) % config.val_every == 0 or epoch + 1 == config.max_epochs
        stop = torch.zeros(1, device=dist.device)
        if dist.main:
            if validated and val_cases:
                row.update(validate(unwrap(model), val_cases, config.inference_roi, dist.device, sw_batch_size=config.sw_batch_size))
                threshold = row.pop("dawm_threshold")
                if row["val_dice"] > state["best_val_dice"]:
                    state.update(best_val_dice=row["val_dice"], best_epoch=epoch, bad_validations=0, dawm_threshold=threshold)
                    save_checkpoint(fdir / "best.pt", model=model, epoch=epoch + 1, state=state, rng=False)
                else:
                    state["bad_validations"] += 1
            elif not val_cases:  # no validation subjects: the last epoch is the best
                state.update(best_epoch=epoch)
                save_checkpoint(fdir / "best.pt", model=model, epoch=epoch + 1, state=state, rng=False)
            row["seconds"] = round(time.perf_counter() - t0, 3)
            save_checkpoint(last, model=model, optimizer=optimizer, scheduler=scheduler, epoch=epoch + 1, state=state)
            runlog.write(row)  # type: ignore[union-attr]
            stop[0] = float(state["bad_validations"] >= config.patience)
        epochs_done = epoch + 1
        if dist.world > 1:
            import torch.distributed as td

            td.broadcast(stop, 0)
        if stop.item() > 0:
            stopped_early = True
            log.info("fold %d: early stop after epoch %d (best %d)", fold, epoch, state["best_epoch"])
            break
    if runlog is not None:
        runlog.close()
    return {
        "best_epoch": state["best_epoch"],
        "best_val_dice": state["best_val_dice"],
        "epochs": epochs_done,
        "stopped_early": stopped_early,
        "dawm_threshold": state.get("dawm_threshold"),
    }


# --------------------------------------------------------------------------------------------
# the dataset
# --------------------------------------------------------------------------------------------


def model_dawm_threshold(folds: dict[str, dict]) -> float | None:
    """The model's DAWM threshold: the mean of its folds' calibrated thresholds (the folds' softmax is
    averaged at prediction); None when no fold has one (no DAWM in any validation set)."""
    values = [f["dawm_threshold"] for f in folds.values() if f.get("dawm_threshold") is not None]
    return round(float(np.mean(values)), 3) if values else None


def _usable(cases: list[Case], config: TrainConfig) -> list[Case]:
    """Cases that hold every input channel (others are logged and skipped)."""
    need = [MODALITIES[m] for m in config.channels]
    keep = [c for c in cases if all(n in c.images for n in need)]
    for c in cases:
        if c not in keep:
            log.warning("%s: lacks %s, not used for training", c.key, ", ".join(n for n in need if n not in c.images))
    return keep


def _preprocess_config(cases: list[Case]) -> dict | None:
    import json

    path = PreprocessFiles.of_file(cases[0].preproc_log).config
    return json.loads(path.read_text()) if path.exists() else None


def train(
    bids_dir: str | Path,
    model_dir: str | Path,
    config: TrainConfig | None = None,
    *,
    folds: list[int] | None = None,
    resume: bool = False,
    preprocess_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    epoch_budget: int | None = None,
) -> dict:
    """Train ``folds`` (default all) of a model on ``bids_dir`` into ``model_dir``; returns model.json's content.

    With ``resume`` the saved config (``max_epochs``/``patience`` may be raised) and split are
    reused and each fold continues from its ``last.pt`` (raising ``max_epochs`` stretches the poly
    learning-rate schedule, so only an unchanged config resumes exactly). ``epoch_budget``: at most
    this many epochs per fold in this call. ``InputError`` for unusable data or a
    model folder that holds another run. Under DDP (``torchrun``) the main rank writes every file
    and its return value is the record; the other ranks validate nothing, so theirs is partial.
    """
    bids_dir, model_dir = Path(bids_dir), Path(model_dir)
    config = (config or TrainConfig()).resolved()
    if resume:
        stored = TrainConfig.model_validate(read_model_json(model_dir)["config"])
        config = stored.model_copy(update={"max_epochs": config.max_epochs, "patience": config.patience})
    elif (model_dir / "model.json").exists() and any(model_dir.glob("fold-*/last.pt")):
        raise InputError(f"{model_dir} holds a trained model: use --resume to continue it, or another --model-dir")
    dist = setup_distributed()
    cases = _usable(discover_cases(bids_dir, preprocess=config.preprocess, labels=config.labels, preprocess_dir=preprocess_dir), config)
    if not cases:
        raise InputError(f"{bids_dir}: no preprocessed session with {config.inputs} and a target in derivatives/{config.labels}")
    model_dir.mkdir(parents=True, exist_ok=True)
    split = main_first(
        dist,
        lambda: load_or_make_split(
            model_dir / "split.json", cases, mode=config.split, folds=config.folds, seed=config.seed, test_fraction=config.test_fraction
        ),
    )
    n_folds = len(split["folds"])
    folds = list(range(n_folds)) if folds is None else folds
    bad = [k for k in folds if not 0 <= k < n_folds]
    if bad:
        raise InputError(f"fold(s) {bad} do not exist: the split has folds 0..{n_folds - 1}")
    used = cases_of(cases, sorted({s for f in split["folds"] for part in ("train", "val") for s in f[part]}))
    fp, cached = main_first(
        dist,
        lambda: build_cache(
            used,
            config.channels,
            Path(cache_dir) if cache_dir else model_dir / "cache",
            seed=config.seed,
            soft=config.dawm_target == "soft",
        ),
    )
    info = read_model_json(model_dir) if (model_dir / "model.json").exists() else {}
    if info.get("data_fingerprint") not in (None, fp):
        log.warning("the training data changed since this model folder was made (fingerprint %s -> %s)", info["data_fingerprint"], fp)
    info.update({
        "name": "dawm model", "dawm_version": dawm.__version__, "git_commit": git_commit(),
        "inputs": config.channels, "input_suffixes": [MODALITIES[m] for m in config.channels],
        "normalisation": NORMALISATION, "patch_size": list(config.patch_size), "inference_roi": list(config.inference_roi), "labels": {str(k): v for k, v in LABELS.items()},
        "preset": config.preset, "modality_dropout": config.modality_dropout if len(config.channels) > 1 else 0.0,
        "config": config.model_dump(mode="json"), "split": split, "data_fingerprint": fp,
        "preprocess_config": _preprocess_config(cases), "folds": info.get("folds", {}),
    })  # fmt: skip
    if dist.main:
        write_model_json(model_dir, info)
    for k in folds:
        f = split["folds"][k]
        tr = [cached[c.key] for c in cases_of(used, f["train"])]
        va = [cached[c.key] for c in cases_of(used, f["val"])]
        result = train_fold(k, config, model_dir, tr, va, resume=resume, dist=dist, progress=progress, epoch_budget=epoch_budget)
        info["folds"][str(k)] = result
        info["dawm_threshold"] = model_dawm_threshold(info["folds"])
        if dist.main:
            write_model_json(model_dir, info)
    end_distributed(dist)
    return info
