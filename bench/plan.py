"""How big and how long each benchmark runs, in full and in quick (CI smoke) mode."""
from __future__ import annotations

from dataclasses import dataclass

MiB = 1 << 20


@dataclass(frozen=True)
class Plan:
    quick: bool
    rounds: int            # alternating Dockyard/reference rounds for each metric
    blob_size: int         # the "1 GiB" blob
    chunk_size: int        # PATCH size for the chunked push
    wrk_seconds: float
    small_push_seconds: float
    tags: int
    repos: int
    listing_reps: int
    hash_bytes: int
    disk_bytes: int
    small_commits: int
    image_layer_size: int  # each of the 5 layers of the pull image
    run_runs: int          # hyperfine runs per command
    containers: int        # detached containers for the memory row
    listed: int = 50       # images and running containers that `ps` / `images` list


FULL = Plan(quick=False, rounds=3, blob_size=1024 * MiB, chunk_size=64 * MiB, wrk_seconds=10,
            small_push_seconds=8, tags=2000, repos=500, listing_reps=7, hash_bytes=1024 * MiB,
            disk_bytes=1024 * MiB, small_commits=300, image_layer_size=40 * MiB, run_runs=20, containers=4)

QUICK = Plan(quick=True, rounds=1, blob_size=64 * MiB, chunk_size=16 * MiB, wrk_seconds=2,
             small_push_seconds=1.5, tags=200, repos=50, listing_reps=3, hash_bytes=128 * MiB,
             disk_bytes=64 * MiB, small_commits=50, image_layer_size=4 * MiB, run_runs=3, containers=1, listed=3)


def for_mode(quick: bool) -> Plan:
    return QUICK if quick else FULL


def size_label(n: int) -> str:
    return f"{n // (1 << 30)} GiB" if n >= 1 << 30 and n % (1 << 30) == 0 else f"{n // MiB} MiB"
