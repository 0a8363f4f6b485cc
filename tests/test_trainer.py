"""The Trainer module's pure parts: model config from the pipeline's custom_config, the resumable checkpoint key."""

import pytest
from tfx.components.trainer.fn_args_utils import FnArgs

from pipeline import configs, trainer


def test_model_config_takes_the_preset_the_data_shape_and_overrides():
    config = trainer.model_config_from(
        {"preset": "digits", "image_shape": [8, 8], "overrides": {"epochs": 3, "hidden_units": [16, 8]}}, input_dim=64)
    assert (config.input_dim, config.image_shape, config.epochs, config.hidden_units) == (64, (8, 8), 3, (16, 8))
    assert config.input_scale == 1.0, "tf.Transform already scaled the inputs"
    with pytest.raises(ValueError, match="unknown model preset 'huge'"):
        trainer.model_config_from({"preset": "huge"}, input_dim=4)


def _fn_args(tmp_path, **custom):
    return FnArgs(train_files=[str(tmp_path / "train-*")], transform_output=str(tmp_path / "tft"),
                  custom_config={configs.CHECKPOINT_ROOT_KEY: str(tmp_path / "ckpt"), "preset": "digits", **custom})


def test_a_retried_training_finds_the_same_checkpoint_directory(tmp_path):
    first = trainer.checkpoint_dir_for(_fn_args(tmp_path))
    assert first.startswith(str(tmp_path / "ckpt"))
    assert trainer.checkpoint_dir_for(_fn_args(tmp_path)) == first
    assert trainer.checkpoint_dir_for(_fn_args(tmp_path, overrides={"seed": 1})) != first
    assert trainer.checkpoint_dir_for(FnArgs(train_files=[], custom_config={})) is None
