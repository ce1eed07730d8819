"""Study configs: presets validate, and every mistake is one sentence that names the key."""

from __future__ import annotations

import pytest

from dlcompat.errors import ConfigError
from dlcompat.study.config import config_to_toml, load_config, load_preset, parse_config, preset_names


def test_presets_exist_and_validate():
    assert {"quick", "paper-mnist", "paper-cifar10"} <= set(preset_names())
    quick = load_preset("quick")
    assert quick.datasets == ["digits"] and quick.models == ["lenet1", "lenet5"]
    assert quick.frameworks == ["all"]
    assert quick.runtimes == ["onnxruntime", "ortweb", "tfjs", "litert", "executorch", "coreml"]


def test_rendered_toml_parses_back_to_the_same_config():
    for name in preset_names():
        config = load_preset(name)
        assert parse_config(config_to_toml(config)) == config


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('models = ["lenet7"]', "`models` unknown 'lenet7'; choose from"),
        ('frameworks = ["caffe"]', "`frameworks` unknown 'caffe'"),
        ("[train]\nepochs = 0", "`train.epochs`"),
        ("[train]\nepoch = 3", "`train.epoch` is not a known setting"),
        ('[train]\noptimizer = "rmsprop"', "`train.optimizer`"),
        ("seeds = []", "`seeds` must list at least one entry"),
        ('[converters]\n"torch.onnx" = ["jit"]', "unknown variant 'jit'"),
        ("datasets = [", "not valid TOML"),
        ('[train]\nlr_schedule = "step"', "`train` lr_schedule = \"step\" needs lr_milestones"),
        ("[train]\nlr_milestones = [5]", "lr_milestones apply only to lr_schedule = \"step\""),
        ('[train]\nlr_schedule = "step"\nlr_milestones = [5, 3]', "`train.lr_milestones` must be strictly increasing"),
        ('[train]\nepochs = 5\nlr_schedule = "step"\nlr_milestones = [5]', "milestone 5 would never apply"),
        ('[train]\nlr_schedule = "exponential"', "`train.lr_schedule`"),
        ('[train]\naugmentation = "cutout"', "`train.augmentation`"),
    ],
)
def test_bad_configs_name_the_key(text, fragment):
    with pytest.raises(ConfigError) as info:
        parse_config(text, "study.toml")
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


def test_unknown_preset():
    with pytest.raises(ConfigError, match="quick"):
        load_preset("fast")


def test_training_settings_reach_the_adapters_as_they_were_written():
    from dlcompat.frameworks.base import TrainSettings
    from dlcompat.frameworks.lr_schedule import learning_rates

    config = parse_config('[train]\nepochs = 4\nlr = 0.1\nlr_schedule = "step"\nlr_milestones = [1, 3]\n'
                          'augmentation = "crop-flip"')
    settings = TrainSettings.from_dict(config.train.model_dump())
    assert settings.lr_milestones == (1, 3) and settings.augmentation == "crop-flip"
    assert learning_rates(settings) == pytest.approx([0.1, 0.01, 0.01, 0.001])
    assert parse_config("").train.lr_schedule == "constant" and parse_config("").train.augmentation == "none"
