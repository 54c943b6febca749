"""torch.distributed set-up (torchrun) and a resumable, rank-aware sampler."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device_pref: str = "auto") -> tuple[DistInfo, torch.device]:
    """Read torchrun's env (RANK, WORLD_SIZE, LOCAL_RANK); init NCCL on GPUs, gloo on CPU."""
    info = DistInfo(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                    int(os.environ.get("LOCAL_RANK", 0)))
    use_cuda = torch.cuda.is_available() and device_pref != "cpu"
    if device_pref.startswith("cuda:") and not info.enabled:
        device = torch.device(device_pref)
    elif use_cuda:
        device = torch.device("cuda", info.local_rank if info.enabled else 0)
    else:
        device = torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if info.enabled and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return info, device


class ResumableSampler(torch.utils.data.Sampler):
    """Shuffled indices for one epoch, split across ranks like DistributedSampler, that can
    start ``start`` samples into this rank's share (to resume mid-epoch exactly).

    The permutation depends only on (seed, epoch), so every rank and every resume agrees.
    """

    def __init__(self, n: int, seed: int, rank: int = 0, world_size: int = 1, shuffle: bool = True):
        if n <= 0:
            raise ValueError("ResumableSampler: the dataset is empty")
        self.n, self.seed, self.rank, self.world, self.shuffle = n, seed, rank, world_size, shuffle
        self.epoch, self.start = 0, 0
        self.per_rank = -(-n // world_size)

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def indices(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        order += order[: self.per_rank * self.world - self.n]  # pad so every rank gets as many
        return order[self.rank::self.world]

    def __iter__(self):
        # the epoch rides along in the index (epoch·n + i) so SeededDataset can seed augmentation by
        # (seed, epoch, i) even in persistent workers that never see set_epoch
        return iter(self.epoch * self.n + i for i in self.indices()[self.start:])

    def __len__(self) -> int:
        return self.per_rank - self.start


class SeededDataset(torch.utils.data.Dataset):
    """Makes a dataset's random augmentation a pure function of (seed, epoch, index), so results
    do not depend on the number of workers and a resumed run draws the same augmentations.

    Indices come from :class:`ResumableSampler` as ``epoch·n + i``.
    """

    def __init__(self, dataset, seed: int):
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        epoch, index = divmod(index, len(self.dataset))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed((self.seed * 1_000_003 + epoch * 7919 + index) % (2 ** 63))
            return self.dataset[index]
