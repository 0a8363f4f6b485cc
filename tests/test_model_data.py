"""`model.data.TrainingData`: an array and a stream of TFRecords give the same rows; the counting pass; the seeded,
bounded sample; the sample's initial clusters by row index; the DATA sharding over two workers."""

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.data.experimental.ops import distribute as data_distribute
from tensorflow.python.distribute import input_ops

from model.data import SampleLabels, TrainingData, sample_rows

N, F = 53, 3
SPEC = {"f": tf.io.FixedLenFeature([F], tf.float32)}


@pytest.fixture
def x() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(N, F)).astype(np.float32)


@pytest.fixture
def streamed(x, tmp_path) -> TrainingData:
    """x as tf.Examples in three gzip TFRecord files (rows in file-name order), streamed."""
    files = [str(tmp_path / f"part-{i}.gz") for i in range(3)]
    for path, rows in zip(files, np.array_split(x, 3), strict=True):
        with tf.io.TFRecordWriter(path, options="GZIP") as writer:
            for row in rows:
                writer.write(tf.train.Example(features=tf.train.Features(feature={
                    "f": tf.train.Feature(float_list=tf.train.FloatList(value=row))})).SerializeToString())
    return TrainingData.from_records(files[::-1], lambda serialized: tf.io.parse_example(serialized, SPEC)["f"])


def _rows(dataset: tf.data.Dataset) -> np.ndarray:
    return np.concatenate([np.asarray(batch) for batch in dataset.as_numpy_iterator()])


def test_an_array_and_its_records_give_the_same_rows_after_one_counting_pass(x, streamed) -> None:
    array = TrainingData.from_array(x)
    assert (streamed.n_rows, streamed.input_dim) == (array.n_rows, array.input_dim) == (N, F)
    assert streamed.array is None and array.array is not None
    assert streamed.steps(10) == array.steps(10) == 6
    for data in (array, streamed):
        np.testing.assert_array_equal(_rows(data.dataset(10, seed=0, shuffle=False)), x)
        shuffled = _rows(data.dataset(10, seed=0))
        assert not np.array_equal(shuffled, x)
        np.testing.assert_array_equal(np.sort(shuffled, axis=0), np.sort(x, axis=0))
        np.testing.assert_array_equal(data.take(np.array([0, 17, 52])), x[[0, 17, 52]])
    assert len(streamed.take_elements(np.array([1, 2]))) == 2
    loaded = streamed.in_memory()
    np.testing.assert_array_equal(loaded.array, x)
    assert loaded.in_memory() is loaded and streamed.array is None
    with pytest.raises(ValueError, match="no training files"):
        TrainingData.from_records([], tf.identity)


def test_the_sample_is_seeded_bounded_and_in_row_order(x, streamed) -> None:
    rows, sample = streamed.sample(10, seed=3)
    again, _ = streamed.sample(10, seed=3)
    np.testing.assert_array_equal(rows, again)
    assert len(rows) == 10 and np.all(np.diff(rows) > 0) and rows.max() < N
    np.testing.assert_array_equal(sample, x[rows])
    assert not np.array_equal(streamed.sample_rows(10, seed=4), rows)
    np.testing.assert_array_equal(streamed.sample_rows(100, seed=3), np.arange(N))
    np.testing.assert_array_equal(sample_rows(N, 10, 3), rows)


def test_initial_clusters_are_looked_up_by_row_index() -> None:
    labels = SampleLabels(np.array([2, 5, 9]), np.array([1, 0, 2]))
    np.testing.assert_array_equal(labels.lookup(tf.constant([0, 2, 5, 9, 10], tf.int64)), [-1, 1, 0, 2, -1])
    np.testing.assert_array_equal(labels.dense(11), [-1, -1, 1, -1, -1, 0, -1, -1, -1, 2, -1])
    empty = SampleLabels(np.array([], np.int64), np.array([], np.int64))
    np.testing.assert_array_equal(empty.lookup(tf.constant([0, 1], tf.int64)), [-1, -1])


def test_shuffled_batches_carry_each_rows_own_initial_cluster(x, streamed) -> None:
    rows = streamed.sample_rows(20, seed=0)
    labels = SampleLabels(rows, rows * 7 % 5)
    for inputs, batch_labels in streamed.dataset(8, seed=1, labels=labels).as_numpy_iterator():
        index = np.array([int(np.flatnonzero((x == row).all(1))[0]) for row in inputs])
        np.testing.assert_array_equal(batch_labels, labels.dense(N)[index])


def test_two_workers_each_take_their_part_of_every_global_batch(streamed) -> None:
    """What tf.distribute does with the dataset for 2 workers of one replica each (input_lib.DistributedDataset):
    rebatch each global batch into per-worker parts, then shard by the dataset's policy (DATA)."""
    everything = SampleLabels(np.arange(N), np.arange(N))  # the label is the row index
    seen = []
    for worker in range(2):  # each worker builds the dataset and iterates it in its own process
        dataset = streamed.dataset(10, seed=0, labels=everything)
        sizes = data_distribute.batch_sizes_for_worker(10, 2, 1, worker)
        shard = input_ops.auto_shard_dataset(dataset.rebatch(sizes), 2, worker, 2)
        batches = [labels for _, labels in shard.as_numpy_iterator()]
        assert len(batches) == streamed.steps(10), "every worker takes part in every step"
        assert [len(b) for b in batches[:-1]] == [5] * (len(batches) - 1)
        seen.extend(np.concatenate(batches))
    np.testing.assert_array_equal(np.sort(seen), np.arange(N))
