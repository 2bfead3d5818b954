"""Speed and memory of the dawm networks (``dawm train`` / ``dawm predict``).

Usage::

    python benchmarks/model_speed.py                 # 1 mm brain, both presets (minutes on 2 CPU cores)
    python benchmarks/model_speed.py --quick         # smaller volume and patches: a smoke run

Measures, with ``torch.set_num_threads(--threads)`` (2 by default):

* training step time (forward + backward + AdamW step, one batch) and patches/s, for ``cpu-small``
  (UNet, 64^3 patches, batch 2) and ``gpu`` (nnU-Net-sized DynUNet, 128^3, batch 2), on CPU;
* full-brain inference: sliding window (overlap 0.5, Gaussian) over the brain's bounding box of a
  1 mm volume (a 182 x 218 x 182 grid with a 140 x 172 x 136 mm ellipsoidal brain), time , and the
  peak resident memory of a fresh process while it runs (``/proc/self/statm`` sampled every 20 ms;
  the input volume and the network are already loaded);
* GPU columns (time, peak allocated memory) when CUDA is available (``--devices cuda`` for the GPU
  alone); on the GPU the inference is timed after one warm-up call (its time is kept as
  ``first_call_seconds``), in bf16 autocast as ``dawm predict`` runs it;
* the training cache against NIfTI: time to get one patch from a memory-mapped ``.npy`` case
  versus reading the case's ``.nii.gz`` files (2 channels, label, brain mask).

Writes ``benchmarks/results/model_speed.json`` and ``.md`` (``--name`` to change).
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from harness import Run, benchmark_parser, markdown_table, write_results

PRESETS = {"cpu-small": {"patch": 64, "batch": 2, "roi": 64}, "gpu": {"patch": 128, "batch": 2, "roi": 128}}


def _volume(shape, rng):
    idx = np.indices(shape, dtype=np.float32)
    c = (np.array(shape) - 1) / 2
    radii = np.array([70, 86, 68]) * np.array(shape) / np.array([182, 218, 182])
    brain = (((idx - c[:, None, None, None]) / radii[:, None, None, None]) ** 2).sum(0) <= 1
    image = rng.normal(size=(2, *shape)).astype(np.float32) * brain
    return image, brain


def _train_steps(preset: str, patch: int, batch: int, steps: int, threads: int, device: str, warmup: int = 1) -> dict:
    import torch
    from monai.losses import DiceCELoss

    from dawm.model.networks import build_network, n_parameters

    torch.set_num_threads(threads)
    dev = torch.device(device)
    net = build_network(preset, 2).to(dev)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    x = torch.randn(batch, 2, patch, patch, patch, device=dev)
    y = torch.randint(0, 3, (batch, 1, patch, patch, patch), device=dev)
    times = []
    amp = dev.type == "cuda"
    for i in range(steps + warmup):
        if amp:
            torch.cuda.synchronize()
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()
        if amp:
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t)
    out = {
        "parameters": n_parameters(net),
        "patch": patch,
        "batch": batch,
        "step_s": float(np.median(times)),
        "patches_per_s": batch / float(np.median(times)),
        "steps_timed": len(times),
    }
    if amp:
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


class _PeakRSS:
    """Samples this process's resident memory (``/proc/self/statm``) every 20 ms in a thread."""

    def __enter__(self):
        import os
        import threading

        self.page = os.sysconf("SC_PAGE_SIZE")
        self.peak, self._stop = self.now(), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def now(self) -> float:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * self.page / 2**20

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.now())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.now())


def _infer(preset: str, roi: int, shape, threads: int, device: str, queue) -> None:
    import torch

    from dawm.model.networks import build_network
    from dawm.model.window import brain_box, segment_volume

    torch.set_num_threads(threads)
    dev = torch.device(device)
    image, brain = _volume(shape, np.random.default_rng(0))
    net = build_network(preset, 2).to(dev).eval()
    first = None
    if dev.type == "cuda":  # the first call pays CUDA/cuDNN start-up: timed apart, then the warm call is reported
        t = time.perf_counter()
        segment_volume([net], image, brain, (roi,) * 3, device=dev, sw_batch_size=2)
        torch.cuda.synchronize()
        first = time.perf_counter() - t
        torch.cuda.reset_peak_memory_stats()
    with _PeakRSS() as rss:
        base = rss.now()
        t = time.perf_counter()
        probs = segment_volume([net], image, brain, (roi,) * 3, device=dev, sw_batch_size=2)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t
    box = brain_box(brain)
    res = {
        "seconds": seconds,
        "volume": list(shape),
        "box": [s.stop - s.start for s in box],
        "roi": roi,
        "peak_rss_mb": rss.peak,
        "rss_before_mb": base,
        "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "output_shape": list(probs.shape),
    }
    if dev.type == "cuda":
        res["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
        res["first_call_seconds"] = first
    queue.put(res)


def _in_child(fn, *args) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=fn, args=(*args, q))
    p.start()
    out = q.get()
    p.join()
    return out


def _cache_vs_nifti(shape, patch: int, n: int) -> dict:
    from dawm.image.io import load_volume, save_volume
    from dawm.model.sampling import crop

    rng = np.random.default_rng(1)
    image, brain = _volume(shape, rng)
    label = (rng.random(shape) < 0.01).astype(np.uint8)
    affine = np.eye(4)
    centres = [tuple(int(rng.integers(patch // 2, s - patch // 2)) for s in shape) for _ in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        names = ["t1w", "flair"]
        for i, nme in enumerate(names):
            save_volume(image[i] * 1000 + 2000, affine, d / f"{nme}.nii.gz")
        save_volume(label, affine, d / "label.nii.gz", dtype=np.uint8)
        save_volume(brain, affine, d / "brain.nii.gz", dtype=np.uint8)
        np.save(d / "image.npy", image)
        np.save(d / "label.npy", label)
        t = time.perf_counter()
        for c in centres:
            chans = np.stack([load_volume(d / f"{nme}.nii.gz").data for nme in names])
            lab = load_volume(d / "label.nii.gz", allow_empty=True).data
            load_volume(d / "brain.nii.gz")
            crop(chans, c, (patch,) * 3), crop(lab, c, (patch,) * 3)
        nifti = (time.perf_counter() - t) / n
        t = time.perf_counter()
        for c in centres:
            img = np.load(d / "image.npy", mmap_mode="r")
            lab = np.load(d / "label.npy", mmap_mode="r")
            crop(img, c, (patch,) * 3), crop(lab, c, (patch,) * 3)
        cache = (time.perf_counter() - t) / n
    return {"patch": patch, "patches": n, "nifti_ms_per_patch": nifti * 1e3, "cache_ms_per_patch": cache * 1e3, "speedup": nifti / cache}


def markdown(results: dict) -> str:
    """The speed table (one row per preset and device) and the patch-loading line."""
    shape, devices = results["volume_shape"], results.get("devices") or ["cpu"] + (["cuda"] if results["cuda"] else [])

    def first(inf: dict) -> str:
        return f" (first call {inf['first_call_seconds']:.2f})" if inf.get("first_call_seconds") is not None else ""

    rows = []
    for preset, row in results["presets"].items():
        for dev in devices:
            tr, inf = row[f"train_{dev}"], row[f"infer_{dev}"]
            rows.append(
                {
                    "preset": preset,
                    "params (M)": tr["parameters"] / 1e6,
                    "device": dev,
                    "patch": f"{tr['patch']}^3 x{tr['batch']}",
                    "train step (s)": tr["step_s"],
                    "patches/s": tr["patches_per_s"],
                    "inference (s)": f"{inf['seconds']:.2f}{first(inf)}",
                    "window": f"{inf['roi']}^3",
                    "peak RSS sampled / ru_maxrss (MB)": f"{inf['peak_rss_mb']:.0f} / {inf.get('ru_maxrss_mb', float('nan')):.0f}",
                    "peak GPU (MB)": inf.get("peak_gpu_mb"),
                }
            )
    lines = [
        f"# dawm model speed ({'quick, ' if results['quick'] else ''}volume {shape[0]}x{shape[1]}x{shape[2]} at 1 mm, {results['threads']} threads)",
        "",
        f"{results['processor']}, torch {results['torch']}, GPU: {results['cuda'] or 'none'}",
        "",
        markdown_table(rows, formats={"params (M)": ".1f", "train step (s)": ".2f", "patches/s": ".2f", "peak GPU (MB)": ".0f"}, na="nan"),
    ]  # no GPU: "nan", as the CPU rows have always shown
    c = results["cache_vs_nifti"]
    lines += [
        "",
        f"Patch loading ({c['patch']}^3, 2 channels + label): NIfTI .nii.gz {c['nifti_ms_per_patch']:.1f} ms/patch, "
        f"memory-mapped cache {c['cache_ms_per_patch']:.2f} ms/patch ({c['speedup']:.0f}x faster).",
        "",
        "Inference runs on the brain's bounding box (+4 voxels); peak RSS: a fresh process during the inference "
        "(input volume and network loaded; sampled every 20 ms).",
        "The gpu preset's CPU training step is a single step without warm-up.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = benchmark_parser(__doc__, name="model_speed")
    ap.add_argument("--quick", action="store_true", help="small volume and patches (smoke run)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--steps",
        type=int,
        default=2,
        help="timed training steps per preset after one warm-up (the gpu preset on CPU: one step, no warm-up)",
    )
    ap.add_argument("--presets", default="cpu-small,gpu")
    ap.add_argument("--devices", default=None, help="comma-separated, e.g. cuda (default: cpu, and cuda when available)")
    args = ap.parse_args(argv)
    import torch

    run = Run.start(argv, script=__file__)  # after torch: the GPU named through it

    shape = (96, 112, 96) if args.quick else (182, 218, 182)
    devices = args.devices.split(",") if args.devices else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if "cuda" in devices and not torch.cuda.is_available():
        ap.error("--devices cuda: no CUDA device here")
    results: dict = {
        "devices": devices,
        "volume_shape": list(shape),
        "threads": args.threads,
        "quick": args.quick,
        "machine": run.machine.platform,
        "processor": run.machine.processor,
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "presets": {},
    }
    for preset in args.presets.split(","):
        p = dict(PRESETS[preset])
        if args.quick:
            p = {"patch": 64, "batch": 2, "roi": 64} if preset == "gpu" else {"patch": 32, "batch": 2, "roi": 32}
        row: dict = {}
        for dev in devices:
            print(f"{preset} on {dev}: training steps...", flush=True)
            row[f"train_{dev}"] = _train_steps(
                preset,
                p["patch"],
                p["batch"],
                *((args.steps, args.threads, dev, 1) if dev == "cuda" or preset == "cpu-small" else (1, args.threads, dev, 0)),
            )
            print(f"  {row[f'train_{dev}']}", flush=True)
            print(f"{preset} on {dev}: full-volume inference...", flush=True)
            row[f"infer_{dev}"] = _in_child(_infer, preset, p["roi"], shape, args.threads, dev)
            print(f"  {row[f'infer_{dev}']}", flush=True)
        results["presets"][preset] = row
    print("cache vs nifti...", flush=True)
    results["cache_vs_nifti"] = _cache_vs_nifti(shape, 32 if args.quick else 64, 5 if args.quick else 10)
    print(results["cache_vs_nifti"], flush=True)
    write_results(args.name, results, markdown(results), run=run, results_dir=args.results_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
