"""Writing: deterministic output shards in a temporary directory, moved over the previous outputs only at the end.

Names are fixed (``scores-SSSSS-of-NNNNN.csv``, ``dead_letter-00000-of-00001.jsonl``), rows are spread over the score
shards by a hash of their input position and sorted by it within a shard, so a re-run rewrites the same files.
"""

from __future__ import annotations

import json
import os
import re
import zlib
from collections.abc import Iterable

import numpy as np
from apache_beam import DoFn
from apache_beam.io.filesystems import FileSystems

from batch_scoring.options import BLANK_IDS, DEAD, ID_ROWS, READ, SCORED, SHARED_IDS
from model.features import CLUSTER, CLUSTER_PROBABILITIES, ELBO, ID_KEY, LATENT_MEAN

SCORES_PREFIX, DEAD_PREFIX, SUMMARY = "scores", "dead_letter", "summary.json"
COUNTS_FILE = "_counts.json"
# Rows of a score shard formatted and written at a time.
WRITE_ROWS = 20_000


def shard_name(prefix: str, shard: int, num_shards: int, suffix: str) -> str:
    """``<prefix>-SSSSS-of-NNNNN<suffix>``."""
    return f"{prefix}-{shard:05d}-of-{num_shards:05d}{suffix}"


def _shard_of(key: tuple, num_shards: int) -> int:
    """The score shard of the row at input position ``key`` (stable across runs and workers)."""
    return zlib.crc32(f"{key[0]}\0{key[1]}".encode()) % num_shards


def by_shard(keys: list, ids: list, arrays: dict, num_shards: int) -> Iterable:
    """Scored rows of one batch -> ``(shard, (keys, ids, cluster, elbo, probabilities, latent))`` per shard."""
    shards = np.array([_shard_of(key, num_shards) for key in keys])
    for shard in np.unique(shards):
        take = np.flatnonzero(shards == shard)
        yield int(shard), ([keys[i] for i in take], [ids[i] for i in take], arrays[CLUSTER][take],
                           arrays[ELBO][take], arrays[CLUSTER_PROBABILITIES][take], arrays[LATENT_MEAN][take])


_NEEDS_QUOTES = re.compile(r'[,"\r\n]')


def _csv_field(text: str) -> str:
    """``text`` as one CSV field, quoted as Python's csv writer quotes it (only when it must be)."""
    return '"' + text.replace('"', '""') + '"' if _NEEDS_QUOTES.search(text) else text


def score_header(k: int, d: int) -> list[str]:
    """The columns of a scores file for K clusters and a D-dimensional latent space."""
    return ([ID_KEY, CLUSTER, ELBO] + [f"{CLUSTER_PROBABILITIES}_{i}" for i in range(k)]
            + [f"{LATENT_MEAN}_{i}" for i in range(d)])


class WriteScoreShard(DoFn):
    """``(shard, [(keys, ids, cluster, elbo, probabilities, latent)])`` -> one CSV file sorted by input position.

    Yields the number of rows written.
    """

    def __init__(self, directory: str, num_shards: int) -> None:
        self._directory = directory
        self._num_shards = num_shards

    def process(self, element: tuple) -> Iterable:
        shard, chunks = element
        chunks = list(chunks)
        keys = [key for chunk in chunks for key in chunk[0]]
        ids = [row_id for chunk in chunks for row_id in chunk[1]]
        clusters, elbos, probabilities, latents = (np.concatenate([chunk[j] for chunk in chunks]) for j in range(2, 6))
        order = np.array(sorted(range(len(keys)), key=keys.__getitem__), dtype=np.int64)
        k, d = probabilities.shape[1], latents.shape[1]
        values = np.column_stack([elbos, probabilities, latents]).astype(np.float64)
        # one %-format per row rather than a Python call per value: "%.9g" writes what f"{v:.9g}" does (nan, inf too)
        row_format = "%s,%d," + ",".join(["%.9g"] * (1 + k + d)) + "\n"
        path = FileSystems.join(self._directory, shard_name(SCORES_PREFIX, shard, self._num_shards, ".csv"))
        with FileSystems.create(path) as f:
            f.write((",".join(score_header(k, d)) + "\n").encode("utf-8"))
            for start in range(0, len(order), WRITE_ROWS):  # formatted a slice at a time: memory stays bounded
                take = order[start:start + WRITE_ROWS]
                f.write("".join(row_format % (_csv_field(ids[i]), clusters[i], *row)
                                for i, row in zip(take.tolist(), values[take].tolist(), strict=True)).encode("utf-8"))
        yield SCORED, len(keys)


class WriteDeadLetters(DoFn):
    """``(0, [((source, position), record)])`` -> the dead-letter JSON Lines file in input order; yields the count."""

    def __init__(self, directory: str) -> None:
        self._directory = directory

    def process(self, element: tuple) -> Iterable:
        _, items = element
        items = sorted(items, key=lambda item: item[0])
        path = FileSystems.join(self._directory, shard_name(DEAD_PREFIX, 0, 1, ".jsonl"))
        with FileSystems.create(path) as f:
            for _, record in items:
                f.write((json.dumps(record, sort_keys=True) + "\n").encode("utf-8"))
        yield DEAD, len(items)


class WriteCounts(DoFn):
    """All ``(name, count)`` pairs -> the totals, written to ``COUNTS_FILE`` for the driver's check."""

    def __init__(self, directory: str) -> None:
        self._directory = directory

    def process(self, counts: list) -> Iterable:
        totals = {READ: 0, SCORED: 0, DEAD: 0, BLANK_IDS: 0, SHARED_IDS: 0, ID_ROWS: 0}
        for name, n in counts:
            totals[name] += n
        with FileSystems.create(FileSystems.join(self._directory, COUNTS_FILE)) as f:
            f.write(json.dumps(totals).encode("utf-8"))
        yield totals


def _listdir(directory: str) -> list[str]:
    """The paths in ``directory`` (empty when it does not exist)."""
    try:
        return [m.path for r in FileSystems.match([FileSystems.join(directory, "*")]) for m in r.metadata_list]
    except Exception:  # noqa: BLE001 - nothing there
        return []


def commit_outputs(tmp_dir: str, output: str, num_shards: int, k: int, d: int) -> list[str]:
    """Replace the previous outputs in ``output`` with the files of ``tmp_dir`` (fixed names, nothing stale)."""
    produced = {os.path.basename(p): p for p in _listdir(tmp_dir)}
    for shard in range(num_shards):  # an empty shard still gets its (header-only) file
        name = shard_name(SCORES_PREFIX, shard, num_shards, ".csv")
        if name not in produced:
            produced[name] = FileSystems.join(tmp_dir, name)
            with FileSystems.create(produced[name]) as f:
                f.write((",".join(score_header(k, d)) + "\n").encode("utf-8"))
    dead = shard_name(DEAD_PREFIX, 0, 1, ".jsonl")
    if dead not in produced:
        produced[dead] = FileSystems.join(tmp_dir, dead)
        FileSystems.create(produced[dead]).close()
    stale = [p for p in _listdir(output) if os.path.basename(p).startswith((SCORES_PREFIX + "-", DEAD_PREFIX + "-"))]
    if stale:
        FileSystems.delete(stale)
    names = sorted(n for n in produced if n != COUNTS_FILE)
    FileSystems.rename([produced[n] for n in names], [FileSystems.join(output, n) for n in names])
    return [FileSystems.join(output, n) for n in names]

