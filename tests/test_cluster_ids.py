"""Stable cluster IDs: Hungarian alignment reaches the optimum, new IDs are always fresh, retired IDs stay retired."""

import numpy as np
import pytest

from model.metrics import cluster_accuracy
from serving import cluster_ids
from serving.cluster_ids import Registry


def _inputs(components: np.ndarray) -> np.ndarray:
    return np.eye(int(components.max()) + 1)[components]


def _align(registry: Registry, candidate: np.ndarray, champion_stable: np.ndarray, k: int) -> tuple[int, ...]:
    counts = cluster_ids.co_assignment(champion_stable, candidate, registry.latest.ids, k)
    return cluster_ids.assign_ids(registry, k, cluster_ids.match(counts, registry.latest.ids))


def test_first_model_gets_0_to_k_minus_1_and_a_relabelled_candidate_gets_the_champion_ids():
    rng = np.random.default_rng(0)
    first = rng.integers(0, 4, 400)
    registry = cluster_ids.extend(None, cluster_ids.assign_ids(None, 4, {}), "m1", first, _inputs(first))
    assert registry.latest.ids == (0, 1, 2, 3) and registry.next_id == 4 and registry.introduced == dict.fromkeys(
        range(4), 1)
    relabel = np.array([2, 0, 3, 1])
    candidate = relabel[first]
    noisy = candidate.copy()
    noisy[:40] = rng.integers(0, 4, 40)  # 10% of examples move at random
    ids = _align(registry, noisy, first, 4)
    stable = np.array(ids)[noisy]
    agreement = float(np.mean(stable == first))
    assert agreement == pytest.approx(cluster_accuracy(first, noisy), abs=1e-12)
    assert agreement < 1.0 and float(np.mean(noisy == first)) < 0.5, "raw labels disagree, aligned ones agree"
    assert sorted(ids) == [0, 1, 2, 3]


def test_a_candidate_with_k_plus_1_clusters_gets_exactly_one_new_id_and_retired_ids_never_return():
    rng = np.random.default_rng(1)
    first = rng.integers(0, 3, 600)
    registry = cluster_ids.extend(None, (0, 1, 2), "m1", first, _inputs(first))
    # the candidate splits champion cluster 1 in two (components 1 and 3), the others are renumbered
    candidate = np.array([2, 1, 0])[first]
    split = (first == 1) & (np.arange(first.size) % 4 == 0)
    candidate[split] = 3
    ids = _align(registry, candidate, first, 4)
    new = [i for i in ids if i not in registry.latest.ids]
    assert new == [3] and ids[3] == 3 and sorted(ids[:3]) == [0, 1, 2]
    registry = cluster_ids.extend(registry, ids, "m2", candidate, _inputs(candidate))
    assert registry.next_id == 4 and registry.introduced[3] == 2 and registry.retired == ()

    # a candidate that merges IDs 0 and 3 (K=3): one of them is retired
    champion = np.array(ids)[candidate]
    merged = np.where(champion == 3, 0, champion)
    candidate3 = np.unique(merged, return_inverse=True)[1]
    ids3 = _align(registry, candidate3, champion, 3)
    registry = cluster_ids.extend(registry, ids3, "m3", candidate3, _inputs(candidate3))
    assert registry.retired == (3,) and registry.next_id == 4
    # back to four clusters like generation 2: the fourth gets a fresh ID, not the retired 3
    champion3 = np.array(ids3)[candidate3]
    ids4 = _align(registry, candidate, champion3, 4)
    assert 3 not in ids4 and 4 in ids4 and len(set(ids4)) == 4
    registry = cluster_ids.extend(registry, ids4, "m4", candidate, _inputs(candidate))
    assert registry.retired == (3,) and registry.introduced[4] == 4
    assert [g.generation for g in registry.generations] == [1, 2, 3, 4]


def test_a_match_below_the_overlap_threshold_gets_a_new_id():
    champion = np.repeat([0, 1], 100)
    registry = cluster_ids.extend(None, (0, 1), "m1", champion, _inputs(champion))
    candidate = np.tile([0, 1], 100)  # unrelated to the champion's partition: every overlap is 1/3
    ids = _align(registry, candidate, champion, 2)
    assert ids == (2, 3) and cluster_ids.extend(registry, ids, "m2", candidate, _inputs(candidate)).retired == (0, 1)


def test_registry_round_trips_json_and_keeps_shares_and_prototypes(tmp_path):
    components = np.array([0, 0, 1, 1, 1])
    x = np.arange(10, dtype=float).reshape(5, 2)
    registry = cluster_ids.extend(None, (0, 1), "m1", components, x)
    assert registry.latest.shares == {0: 0.4, 1: 0.6}
    assert registry.latest.prototypes[1] == (6.0, 7.0)
    cluster_ids.write_registry(str(tmp_path), registry)
    assert cluster_ids.read_registry(str(tmp_path)) == registry
    assert cluster_ids.read_registry(str(tmp_path / "none")) is None
    with pytest.raises(ValueError, match="not distinct"):
        cluster_ids.extend(registry, (1, 1), "m2", components, x)
    with pytest.raises(ValueError, match="registry does not list"):
        cluster_ids.co_assignment(np.array([5]), np.array([0]), (0, 1), 2)


def test_after_a_rollback_the_ids_of_the_deleted_version_are_not_issued_again():
    rng = np.random.default_rng(2)
    first = rng.integers(0, 4, 400)
    v1 = cluster_ids.extend(None, (0, 1, 2, 3), "m1", first, _inputs(first))
    split = np.where((first == 3) & (np.arange(first.size) % 4 == 0), 4, first)  # v2 splits cluster 3: new ID 4
    v2 = cluster_ids.extend(v1, _align(v1, split, first, 5), "m2", split, _inputs(split))
    assert v2.next_id == 5 and v2.introduced[4] == 2
    # v2's version directory is deleted: the champion is v1's model again, the record still knows v2's registry
    candidate = split  # the next candidate splits cluster 3 as v2 did: component 4 matches nothing of v1
    assert _align(v1, candidate, first, 5)[4] == 4, "v1's registry alone would issue 4 again"
    known = v1.remembering(v2)
    assert known.next_id == 5 and known.introduced[4] == 2 and known.latest == v1.latest
    ids = _align(known, candidate, first, 5)
    assert 4 not in ids and 5 in ids
    registry = cluster_ids.extend(known, ids, "m3", candidate, _inputs(candidate))
    assert registry.next_id == 6 and registry.introduced[5] == 2 and 4 in registry.retired
    with pytest.raises(ValueError, match="never issued again"):
        cluster_ids.extend(known, (0, 1, 2, 3, 4), "m3", candidate, _inputs(candidate))
    assert v1.remembering(None) is v1
