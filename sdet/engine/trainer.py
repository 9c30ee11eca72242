"""The training loop: one config in, `last.pt` / `best.pt` / `log.jsonl` out.

Guarantees: seeded and deterministic on CPU; every checkpoint write is atomic; `resume`
continues the same run bit for bit (batches are a pure function of seed and step, see
sampler.py; model, method, optimisers (a method's own too) and RNG state are restored); a NaN/inf loss stops
the run with a one-line error and leaves the last good checkpoint in place.
"""
from __future__ import annotations

import json
import math
import random
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader

from sdet.checkpoint import (
    FORMAT, VERSION, atomic_save, check_resumable, inference_state, load_checkpoint, load_detector, load_weights_into,
    pixel_mismatches, temp_leftovers,
)
from sdet.config import Config, config_to_dict
from sdet.data.datasets import TrainDataset, load_split
from sdet.data.formats import eval_protocol
from sdet.engine.run_dir import RunLock, check_out_dir, set_aside, truncate_log
from sdet.engine.evaluator import evaluate
from sdet.engine.optim import build_optimizer, lr_at, set_lr
from sdet.engine.distributed import (
    average_gradients, dist_info_from_env, init_process_group, mean_over_ranks, shutdown,
)
from sdet.engine.sampler import LocalBatchSampler, StreamBatchSampler
from sdet.engine.runtime import tune_glibc_malloc
from sdet.errors import UserError
from sdet.detectors import build_loss
from sdet.methods import MethodContext, build_method, method_class
from sdet.models.detector import Detector, build_detector


class TrainingDiverged(UserError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class TrainResult:
    out_dir: Path
    step: int
    best_hmean: float
    last_metrics: Dict[str, float]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("train.device is cuda but no CUDA device is available", "<config: train.device>")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


class JsonlLogger:
    """Append-only JSON lines, plus TensorBoard when asked for and installed."""

    def __init__(self, out_dir: Path, tensorboard: bool):
        self.path = out_dir / "log.jsonl"
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(out_dir / "tb"))
            except ImportError:
                print("sdet: tensorboard not installed; logging to log.jsonl only")

    def log(self, record: Dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        if self.tb is not None:
            step = record.get("step", 0)
            for key, value in record.items():
                if isinstance(value, (int, float)) and key != "step":
                    self.tb.add_scalar(f"{record.get('event', 'train')}/{key}", value, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def _to_device(batch: Dict[str, torch.Tensor], device: torch.device) -> Dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


class Trainer:
    def __init__(self, cfg: Config, progress: bool = True, stop_after: Optional[int] = None):
        """`stop_after` ends the process-local loop early (used to simulate interruptions in tests)."""
        self.cfg = cfg
        self.progress = progress
        self.stop_after = stop_after
        self.out_dir = Path(cfg.train.out_dir)
        self.dist = dist_info_from_env()
        self.device = resolve_device(cfg.train.device)
        if self.dist.enabled and self.device.type == "cuda":  # one GPU per process, as torchrun numbers them
            self.device = torch.device("cuda", self.dist.local_rank)
        # a step's global batch: per-process batch x processes x accumulated micro-batches
        self.global_batch = cfg.train.batch_size * self.dist.world_size * cfg.train.grad_accum

    # -- set-up -------------------------------------------------------------------------------
    def _build(self) -> None:
        cfg = self.cfg
        tune_glibc_malloc()
        if cfg.train.threads > 0:
            torch.set_num_threads(cfg.train.threads)
        seed_everything(cfg.train.seed)
        self.detector = build_detector(cfg.model)
        if cfg.train.init_from:
            init = load_checkpoint(cfg.train.init_from)
            load_weights_into(self.detector, init, cfg.train.init_from, cfg.train.init_parts)
            mismatches = pixel_mismatches(init, cfg) if self.dist.is_main else []  # one process says it
            for setting in mismatches:
                self._say(f"warning: {cfg.train.init_from} was trained with {setting}; this run feeds its "
                          "pixels otherwise (set it to fine-tune as the model was trained)")
        self.detector.to(self.device)
        self.det_loss = build_loss(cfg)
        # PyTorch's CPU convolutions (oneDNN) run NHWC faster than NCHW, forward and backward
        # on CUDA NHWC is an option (tensor cores under AMP like it): train.channels_last applies as given
        self.channels_last = cfg.train.channels_last and self.device.type in ("cpu", "cuda")
        self.teacher = self._load_teacher()
        ctx = MethodContext(self.detector, self.det_loss, cfg.train.max_steps, self.teacher,
                            average_gradients=lambda params: average_gradients(params, self.dist))
        self.method = build_method(cfg.method, ctx).to(self.device)
        if self.channels_last:
            self.detector.to(memory_format=torch.channels_last)
            self.method.to(memory_format=torch.channels_last)
        if cfg.train.sync_bn and self.dist.enabled:
            if self.device.type != "cuda":
                raise UserError("train.sync_bn needs CUDA devices (PyTorch's SyncBatchNorm runs on NCCL)", "<config>")
            # in place (neither is itself a BatchNorm): the method context keeps the detector, and a
            # method's own heads (SDET's types B and C, BYOT's) normalise over the global batch as well
            torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.detector)
            torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.method)
        params = list(self.detector.parameters()) + list(self.method.optimized_parameters())
        self.optimizer = build_optimizer(params, cfg.train)
        self.trainable = self._data_parallel() if self.dist.enabled else self.method
        ratio = self.global_batch / cfg.train.batch_size
        self.lr_scale = {"none": 1.0, "linear": ratio, "sqrt": math.sqrt(ratio)}[cfg.train.lr_scaling]
        self.use_amp = cfg.train.amp != "off" and self.device.type == "cuda"
        self.amp_dtype = torch.bfloat16 if cfg.train.amp == "bf16" else torch.float16
        # bf16 has float32's exponent range: no loss scaling needed
        self.scaler = torch.amp.GradScaler("cuda") if self.use_amp and cfg.train.amp == "fp16" else None
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = cfg.train.cudnn_benchmark
        self.step = 0
        self.stream_start = (0, 0)  # (step, stream position) the sampler continues from
        self.best_hmean = -1.0
        self.last_metrics: Dict[str, float] = {}
        self.resume_rng: Optional[torch.Tensor] = None
        self.saved_step: Optional[int] = None  # the step of the last.pt this run wrote or resumed from

    def _data_parallel(self) -> torch.nn.Module:
        """DDP over detector + method: one module holding every trained parameter. Parameters a method
        steps with its own optimiser (SKD's discriminator) stay outside and are averaged by the method;
        find_unused_parameters because some methods leave parts idle on some steps (KA's stages, for
        one; SDET's auxiliary head is not among them: its GT term trains it from step 0)."""
        from torch.nn.parallel import DistributedDataParallel

        init_process_group(self.dist, self.device)
        both = _Trainable(self.detector, self.method)
        own = {id(p) for p in self.method.optimized_parameters()}
        ignored = [f"method.{n}" for n, p in self.method.named_parameters() if id(p) not in own]
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(both, ignored)
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(both, device_ids=ids, find_unused_parameters=True)

    def _load_teacher(self) -> Optional[Detector]:
        """The frozen teacher named by method.teacher: eval mode, no gradients, on the student's device.

        It is held only in the method context (never in the optimiser or a checkpoint), so a resumed
        run loads it again from the same path. A missing or unused teacher is build_method's error.
        """
        cfg = self.cfg
        path = cfg.method.teacher
        if not path or not method_class(cfg.method.name).needs_teacher:
            return None
        try:
            with torch.random.fork_rng(devices=[]):  # building it must not shift the student's random stream
                teacher, teacher_cfg, _ = load_detector(path)
        except UserError as exc:
            raise UserError(f"method.teacher: {exc.message}", exc.path) from None
        if teacher_cfg.model.type != cfg.model.type:
            raise UserError(
                f"method.teacher is a '{teacher_cfg.model.type}' detector but the student (model.type) is "
                f"'{cfg.model.type}': the teacher must be of the same type", path
            )
        return frozen_teacher(teacher, self.device, self.channels_last)

    def _training_state(self) -> Dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "kind": "training",
            "config": config_to_dict(self.cfg),
            "model": {k: v.detach().cpu() for k, v in self.detector.state_dict().items()},
            "method": {k: v.detach().cpu() for k, v in self.method.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "method_extra": self.method.extra_state(),  # a method's own optimiser (SKD's discriminator)
            "scaler": self.scaler.state_dict() if self.scaler else {},
            "step": self.step,
            "stream_position": self._stream_position(),
            "global_batch": self.global_batch,
            "best_hmean": self.best_hmean,
            "metrics": dict(self.last_metrics),
            "torch_rng": torch.get_rng_state(),
        }

    def _restore(self, ckpt: Dict[str, Any], path: Path) -> None:
        self.saved_step = int(ckpt["step"])
        self.detector.load_state_dict(ckpt["model"])
        self.method.load_state_dict(ckpt["method"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.method.load_extra_state(ckpt.get("method_extra", {}))
        if self.scaler and ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        self.step = int(ckpt["step"])
        # older checkpoints, and every run so far without DDP: position = step x (then constant) batch
        self.stream_start = (self.step, int(ckpt.get("stream_position", self.step * self.cfg.train.batch_size)))
        self.best_hmean = float(ckpt["best_hmean"])
        self.last_metrics = dict(ckpt.get("metrics", {}))
        self.resume_rng = ckpt["torch_rng"]  # set once the loader exists: creating it draws from the stream

    def _stream_position(self) -> int:
        start_step, start_position = self.stream_start
        return start_position + (self.step - start_step) * self.global_batch

    def _loader(self, dataset: TrainDataset) -> DataLoader:
        cfg = self.cfg
        stream = StreamBatchSampler(len(dataset), self.global_batch, cfg.train.seed,
                                    start_position=self._stream_position())
        sampler = LocalBatchSampler(stream, self.dist) if self.dist.enabled else stream
        workers = cfg.data.num_workers
        return DataLoader(
            dataset,
            batch_sampler=sampler,
            num_workers=workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=workers > 0,
            prefetch_factor=4 if workers > 0 else None,
        )

    # -- evaluation / checkpoints ---------------------------------------------------------------
    def _evaluate(self, logger: JsonlLogger) -> Dict[str, float]:
        if not self.val_samples:
            return {}
        self.detector.eval()
        result = evaluate(self.detector, self.val_samples, self.cfg, self.device, progress=False, protocol=self.protocol)
        self.detector.train()
        metrics = {"precision": result.precision, "recall": result.recall, "hmean": result.hmean}
        self.last_metrics = metrics
        logger.log({"event": "eval", "step": self.step, "protocol": self.protocol, **metrics})
        if metrics["hmean"] > self.best_hmean:
            self.best_hmean = metrics["hmean"]
            atomic_save(inference_state(self.cfg, self.detector.state_dict(), self.step, metrics), self.out_dir / "best.pt")
        return metrics

    def _save_last(self) -> None:
        atomic_save(self._training_state(), self.out_dir / "last.pt")
        self.saved_step = self.step

    # -- the loop -------------------------------------------------------------------------------
    def run(self) -> TrainResult:
        cfg = self.cfg
        # Everything that can fail on bad input happens before the folder is touched: protocol,
        # data, model; an older run's files are moved aside only once this run can start.
        self.protocol = eval_protocol(cfg.data.name, cfg.data.protocol)
        check_out_dir(self.out_dir)
        train_samples = load_split(cfg.data, cfg.data.train_split)
        self.val_samples = load_split(cfg.data, cfg.data.val_split) if cfg.train.eval_every > 0 and cfg.data.val_split else []
        dataset = TrainDataset(train_samples, cfg.data, cfg.model.type, cfg.train.seed)
        self._build()
        last = self.out_dir / "last.pt"
        resume_ckpt = None
        if cfg.train.resume and last.exists():
            resume_ckpt = load_checkpoint(last)
            check_resumable(resume_ckpt, cfg, last)
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create train.out_dir ({exc.strerror or exc})", self.out_dir) from None
        self.lock = RunLock(self.out_dir).acquire() if self.dist.is_main else None
        try:
            return self._run_locked(dataset, last, resume_ckpt)
        finally:
            if self.lock is not None:
                self.lock.release()
            shutdown(self.dist)

    def _prepare_folder(self, last: Path, resume_ckpt: Optional[Dict[str, Any]]) -> None:
        """Under the lock: clear killed writers' temp files, then resume or set an older run aside."""
        cfg = self.cfg
        if self.lock.took_over:
            self._say(f"took over the stale lock of {self.lock.took_over} (that process is gone)")
        for leftover in temp_leftovers(self.out_dir):
            leftover.unlink(missing_ok=True)
        if resume_ckpt is not None:
            self._restore(resume_ckpt, last)
            dropped = truncate_log(self.out_dir / "log.jsonl", self.step)
            if dropped:
                self._say(f"resumed at step {self.step}; dropped {dropped} log records written after that checkpoint")
            return
        if cfg.train.resume:
            self._say(f"train.resume=true but there is no last.pt in {self.out_dir}: starting a fresh run")
        moved = set_aside(self.out_dir)
        if moved is not None:
            self._say(f"an older run's files were moved to {moved}")

    def _say(self, line: str) -> None:
        print(f"sdet: {line}", file=sys.stderr)

    def _run_locked(self, dataset: TrainDataset, last: Path, resume_ckpt: Optional[Dict[str, Any]]) -> TrainResult:
        cfg = self.cfg
        main = self.dist.is_main  # rank 0 alone writes the folder; the others only train
        if main:
            self._prepare_folder(last, resume_ckpt)
            (self.out_dir / "config.yaml").write_text(_yaml_dump(config_to_dict(cfg)), encoding="utf-8")
            if self.dist.enabled:
                self._say(f"data parallel: {self.dist.world_size} processes x batch {cfg.train.batch_size} x "
                          f"{cfg.train.grad_accum} micro-batches = global batch {self.global_batch}; "
                          f"lr x {self.lr_scale:g} (train.lr_scaling={cfg.train.lr_scaling})")
        elif resume_ckpt is not None:
            self._restore(resume_ckpt, last)
        logger = JsonlLogger(self.out_dir, cfg.train.tensorboard) if main else NullLogger()
        self.detector.train()
        self.method.train()

        bar = None
        if self.progress and main:
            from tqdm import tqdm

            bar = tqdm(total=cfg.train.max_steps, initial=self.step, desc="train", dynamic_ncols=True)
        steps_here = 0
        wait_time = compute_time = 0.0
        window_steps = 0
        try:
            loader_iter = iter(self._loader(dataset)) if self.step < cfg.train.max_steps else iter(())
            if self.resume_rng is not None:  # the stream continues exactly where the interrupted run left it
                torch.set_rng_state(self.resume_rng)
            while self.step < cfg.train.max_steps:
                if self.stop_after is not None and steps_here >= self.stop_after:
                    break
                t0 = time.perf_counter()
                batch = _to_device(_next_batch(loader_iter), self.device)
                t1 = time.perf_counter()
                terms = self._train_step(batch)
                t2 = time.perf_counter()
                wait_time += t1 - t0
                compute_time += t2 - t1
                window_steps += 1
                self.step += 1
                steps_here += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{terms['loss']:.3f}")
                if self.step % cfg.train.log_every == 0 or self.step == cfg.train.max_steps:
                    total = wait_time + compute_time
                    logger.log(
                        {"event": "train", "step": self.step, "lr": self.optimizer.param_groups[0]["lr"], **terms,
                         "data_wait_share": wait_time / total if total else 0.0, "sec_per_step": total / window_steps}
                    )
                    wait_time = compute_time = 0.0
                    window_steps = 0
                done = self.step == cfg.train.max_steps
                # rank 0 alone evaluates (the others wait in the next step's gradient all-reduce): sharding
                # would need the detections gathered for one protocol score, for a small share of the time
                if main and cfg.train.eval_every > 0 and (self.step % cfg.train.eval_every == 0 or done):
                    self._evaluate(logger)
                if main and (self.step % cfg.train.save_every == 0 or done):
                    self._save_last()
        finally:
            if bar is not None:
                bar.close()
            logger.close()
        if main and (self.stop_after is None or self.step == cfg.train.max_steps):
            if not (self.out_dir / "best.pt").exists():  # no evaluation ran: the final weights are the model
                atomic_save(inference_state(cfg, self.detector.state_dict(), self.step, self.last_metrics), self.out_dir / "best.pt")
        return TrainResult(self.out_dir, self.step, self.best_hmean, dict(self.last_metrics))

    def _train_step(self, batch: Dict[str, torch.Tensor]) -> Dict[str, float]:
        set_lr(self.optimizer, lr_at(self.step, self.cfg.train) * self.lr_scale)
        self.optimizer.zero_grad(set_to_none=True)
        if self.channels_last:
            batch = {**batch, "image": batch["image"].contiguous(memory_format=torch.channels_last)}
        parts = self.cfg.train.grad_accum
        values: Dict[str, float] = {}
        for i, micro in enumerate(_micro_batches(batch, parts)):
            # DDP all-reduces on the last micro-batch only; the others accumulate locally
            sync = nullcontext() if i == parts - 1 or not self.dist.enabled else self.trainable.no_sync()
            with sync:
                with torch.autocast(device_type=self.device.type, dtype=self.amp_dtype, enabled=self.use_amp):
                    terms = self.trainable(micro, self.step)
                loss = sum(terms.values())
                for key, value in {**terms, "loss": loss}.items():
                    values[key] = values.get(key, 0.0) + float(value.detach()) / parts
                scaled = loss / parts
                if self.scaler is not None:
                    self.scaler.scale(scaled).backward()
                else:
                    scaled.backward()
        values = mean_over_ranks(values, self.dist)  # every rank logs, and stops on, the same numbers
        self._check_finite(values)  # before the optimiser step: the weights stay the last good ones
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if self.cfg.train.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(
                [p for g in self.optimizer.param_groups for p in g["params"]], self.cfg.train.grad_clip
            )
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        extra = mean_over_ranks(self.method.after_step(self.step), self.dist)  # e.g. SKD's discriminator step
        self._check_finite(extra)  # raised before this step's checkpoint: the last good one is kept
        return {**values, **extra}

    def _check_finite(self, values: Dict[str, float]) -> None:
        if not all(math.isfinite(v) for v in values.values()):
            bad = ", ".join(f"{k}={v}" for k, v in values.items())
            if self.saved_step is None:
                kept = "no checkpoint of this run had been written yet"
            else:
                kept = f"the last good checkpoint (step {self.saved_step}) is kept at {self.out_dir / 'last.pt'}"
            raise TrainingDiverged(f"loss is not finite at step {self.step} ({bad}); stopped, {kept}", self.out_dir)


class _Trainable(torch.nn.Module):
    """Detector and method as one module, so DDP sees every trained parameter (the method holds the
    detector by reference only, to keep checkpoints apart)."""

    def __init__(self, detector: Detector, method: torch.nn.Module):
        super().__init__()
        self.detector = detector
        self.method = method

    def forward(self, batch: Dict[str, torch.Tensor], step: int) -> Dict[str, torch.Tensor]:
        return self.method(batch, step)


class NullLogger:
    """What ranks other than 0 log to."""

    def log(self, record: Dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


def _micro_batches(batch: Dict[str, Any], parts: int) -> List[Dict[str, Any]]:
    """`parts` equal consecutive slices of a batch (tensors and lists alike)."""
    if parts == 1:
        return [batch]
    size = len(batch["image"])
    if size % parts:
        raise ValueError(f"a batch of {size} does not split into {parts} micro-batches")
    step = size // parts
    return [{k: v[i * step:(i + 1) * step] for k, v in batch.items()} for i in range(parts)]


def frozen_teacher(teacher: Detector, device: torch.device, channels_last: bool) -> Detector:
    """Eval mode, no gradients, on the student's device and in the student's memory layout."""
    teacher.eval().requires_grad_(False).to(device)
    return teacher.to(memory_format=torch.channels_last) if channels_last else teacher


def _next_batch(loader_iter):
    """A UserError raised in a loader worker comes back wrapped in its traceback: keep one line."""
    try:
        return next(loader_iter)
    except UserError as exc:
        lines = [l for l in str(exc).strip().splitlines() if l.strip()]
        last = lines[-1] if lines else str(exc)
        prefix = "sdet.errors.UserError: "
        raise UserError(last[len(prefix):] if last.startswith(prefix) else last) from None


def _yaml_dump(data: Dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False)


def train(cfg: Config, progress: bool = True) -> TrainResult:
    return Trainer(cfg, progress=progress).run()
