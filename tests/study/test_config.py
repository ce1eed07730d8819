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
        ("[train.per_model.vgg16]\nepochs = 3", "train.per_model names vgg16, which the study does not train"),
        ("[train.per_model.lenet5]\nepoch = 3", "lenet5: epoch is not a known setting"),
        ("[train.per_model.lenet5]\nepochs = 0", "per_model.lenet5.epochs"),
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


def test_paper_presets_run_everything_the_quick_preset_does_and_more():
    quick = load_preset("quick")
    for name in ("paper-mnist", "paper-cifar10"):
        paper = load_preset(name)
        assert paper.frameworks == ["all"] and paper.migration == ["weights", "converters"]
        assert paper.runtimes == quick.runtimes
        for edge, variants in quick.converters.items():
            assert set(variants) <= set(paper.converters[edge]), (name, edge)
        assert paper.converters["jax.onnx"] == ["tflite-tf2onnx", "tf2onnx"]


def test_paper_cifar10_follows_he_et_al_for_resnet20_in_epochs_of_the_45k_split():
    import math

    config = load_preset("paper-cifar10")
    train_images = 50_000 - round(config.data.val_fraction * 50_000)
    assert train_images == 45_000
    resnet = config.train.for_model("resnet20")
    per_epoch = math.ceil(train_images / resnet["batch_size"])  # 352 iterations
    for epochs, iterations in [(resnet["lr_milestones"][0], 32_000), (resnet["lr_milestones"][1], 48_000),
                               (resnet["epochs"], 64_000)]:
        assert abs(epochs * per_epoch - iterations) < per_epoch, (epochs, iterations)
    assert (resnet["lr"], resnet["lr_gamma"], resnet["batch_size"], resnet["weight_decay"]) == (0.1, 0.1, 128, 1e-4)
    assert resnet["lr_schedule"] == "step" and resnet["augmentation"] == "crop-flip"
    vgg = config.train.for_model("vgg16")  # kuangliu/pytorch-cifar's main.py
    assert (vgg["epochs"], vgg["lr_schedule"], vgg["weight_decay"], vgg["lr"]) == (200, "cosine", 5e-4, 0.1)
    assert vgg["augmentation"] == "crop-flip" and vgg["lr_milestones"] == []
