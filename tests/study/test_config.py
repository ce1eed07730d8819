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
