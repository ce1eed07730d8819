"""`dlcompat.data.user_images` on real CIFAR-10 and MNIST images: `.npz` files (uint8, float, with and without
labels), a folder of PNGs in class subfolders written by TensorFlow, resizing on and off, label files, and every
bad input refused with one sentence that says what to do."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dlcompat.data.user_images import read_user_images
from dlcompat.errors import DataError

CIFAR = (32, 32, 3)


def _npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def _refused(path: Path, *needles: str, shape: tuple[int, int, int] = CIFAR, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        read_user_images(path, shape=shape, num_classes=kwargs.pop("num_classes", 10), **kwargs)
    message = str(info.value)
    assert "\n" not in message and ": " in message, message
    for needle in needles:
        assert needle in message, message
    return message


@pytest.fixture(scope="module")
def png_folder(cifar, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CIFAR-10 test images of classes 3 (cat) and 5 (dog) as PNGs in cat/ and dog/, written by tf.io.encode_png;
    plus a notes.txt that is not an image."""
    import tensorflow as tf

    folder = tmp_path_factory.mktemp("pngs")
    x, y = cifar
    for label, name in ((3, "cat"), (5, "dog")):
        (folder / name).mkdir()
        for i in np.flatnonzero(y == label):
            (folder / name / f"{i:03d}.png").write_bytes(tf.io.encode_png(x[i]).numpy())
    (folder / "dog" / "notes.txt").write_text("not an image")
    return folder


def test_uint8_npz_with_labels(cifar, tmp_path: Path) -> None:
    x, y = cifar
    images = read_user_images(_npz(tmp_path / "c.npz", x=x, y=y), shape=CIFAR, num_classes=10)
    np.testing.assert_array_equal(images.x, x)
    np.testing.assert_array_equal(images.y, y)
    assert images.x.dtype == np.uint8 and images.y.dtype == np.int64 and images.class_names is None
    assert images.source == f"{tmp_path / 'c.npz'}: 64 images" and len(images.sha256) == 64
    first = read_user_images(tmp_path / "c.npz", shape=CIFAR, num_classes=10, limit=10)
    np.testing.assert_array_equal(first.x, x[:10])
    np.testing.assert_array_equal(first.y, y[:10])
    assert "10 of 64 images" in first.source and first.sha256 != images.sha256


def test_float_npz_is_stored_as_uint8_and_says_so(cifar, tmp_path: Path) -> None:
    x = cifar[0]
    images = read_user_images(_npz(tmp_path / "f.npz", x=x.astype(np.float32) / 255), shape=CIFAR, num_classes=10)
    np.testing.assert_array_equal(images.x, x)
    assert images.y is None and "round(x*255)" in images.source
    same = read_user_images(_npz(tmp_path / "u.npz", x=x), shape=CIFAR, num_classes=10)
    assert same.sha256 == images.sha256  # the same images, whatever their file


def test_label_files_override_y(cifar, tmp_path: Path) -> None:
    x, y = cifar
    path = _npz(tmp_path / "c.npz", x=x, y=np.zeros_like(y))
    np.save(tmp_path / "labels.npy", y)
    (tmp_path / "labels.txt").write_text("".join(f"{v}\n" for v in y))
    for labels in (tmp_path / "labels.npy", tmp_path / "labels.txt"):
        images = read_user_images(path, shape=CIFAR, num_classes=10, labels=labels, limit=20)
        np.testing.assert_array_equal(images.y, y[:20])
        assert f"labels from {labels}" in images.source


def test_a_folder_of_pngs_in_class_subfolders(cifar, png_folder: Path) -> None:
    x, y = cifar
    images = read_user_images(png_folder, shape=CIFAR, num_classes=10)
    cats, dogs = np.flatnonzero(y == 3), np.flatnonzero(y == 5)
    np.testing.assert_array_equal(images.x, x[np.concatenate([cats, dogs])])  # PNG is lossless
    np.testing.assert_array_equal(images.y, [0] * len(cats) + [1] * len(dogs))
    assert images.class_names == ("cat", "dog")
    assert "2 class folders" in images.source and "1 other files skipped" in images.source
    few = read_user_images(png_folder, shape=CIFAR, num_classes=10, limit=4)
    assert len(few.x) == 4 and set(few.y.tolist()) == {0, 1}  # spread over the classes, not the first four
    assert f"4 of {len(cats) + len(dogs)} images" in few.source


def test_resizing_is_off_unless_asked_and_bilinear_when_on(mnist, png_folder: Path, tmp_path: Path) -> None:
    import tensorflow as tf

    x, y = mnist
    path = _npz(tmp_path / "m.npz", x=x, y=y)
    _refused(path, "the images are 28x28 (H x W), the model takes 32x32", "pass --resize to resize them bilinearly "
             "to 32x32", shape=(32, 32, 1))
    images = read_user_images(path, shape=(32, 32, 1), num_classes=10, resize=True)
    want = np.clip(np.rint(tf.image.resize(x, (32, 32), method="bilinear", antialias=True).numpy()), 0, 255)
    np.testing.assert_array_equal(images.x, want.astype(np.uint8))
    assert images.x.shape == (32, 32, 32, 1) and "resized bilinearly (antialiased) from 28x28 to 32x32" in images.source
    _refused(png_folder, "(H x W), the model takes 24x24", "pass --resize to resize them bilinearly to 24x24",
             shape=(24, 24, 3))
    small = read_user_images(png_folder, shape=(24, 24, 3), num_classes=10, resize=True, limit=3)
    assert small.x.shape == (3, 24, 24, 3) and "3 resized bilinearly (antialiased) to 24x24" in small.source


def test_bad_npz_files(cifar, mnist, tmp_path: Path) -> None:
    x, y = cifar
    _refused(tmp_path / "none.npz", "does not exist", "pass an .npz")
    (tmp_path / "text.npz").write_text("hello")
    _refused(tmp_path / "text.npz", "is not an .npz archive", "numpy.savez")
    _refused(_npz(tmp_path / "noy.npz", images=x), "holds no array named x", "numpy.savez")
    _refused(_npz(tmp_path / "rank.npz", x=x[:, :, :, 0]), "not (N, H, W, C) with four axes")
    _refused(_npz(tmp_path / "empty.npz", x=x[:0]), "holds no images")
    _refused(_npz(tmp_path / "nchw.npz", x=x.transpose(0, 3, 1, 2)), "transpose NCHW images to NHWC")
    _refused(_npz(tmp_path / "gray.npz", x=mnist[0]), "have 1 channel(s), the model takes 3", "convert them",
             shape=(28, 28, 3))
    _refused(_npz(tmp_path / "range.npz", x=x.astype(np.float32)), "not in [0, 1]", "scale the images first")
    _refused(_npz(tmp_path / "int.npz", x=x.astype(np.int32)), "pass uint8 images")
    bad = y.copy()
    bad[5] = 10
    _refused(_npz(tmp_path / "label.npz", x=x, y=bad), "label 10 of image 5 is outside [0, 10)", "labels 0 to 9")
    _refused(_npz(tmp_path / "ylen.npz", x=x, y=y[:3]), "one per image (64)")
    _refused(_npz(tmp_path / "ok.npz", x=x), "limit 0 is not positive", limit=0)


def test_bad_label_files(cifar, tmp_path: Path) -> None:
    x, y = cifar
    path = _npz(tmp_path / "c.npz", x=x)
    _refused(path, "does not exist", labels=tmp_path / "none.npy")
    (tmp_path / "labels.csv").write_text("1\n")
    _refused(path, "neither .npy nor .txt", labels=tmp_path / "labels.csv")
    np.save(tmp_path / "short.npy", y[:10])
    _refused(path, "holds 10 labels for 64 images", "one label per image", labels=tmp_path / "short.npy")
    np.save(tmp_path / "float.npy", y.astype(np.float32))
    _refused(path, "holds a float32 array", labels=tmp_path / "float.npy")
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}] * 64, dtype=object), allow_pickle=True)
    _refused(path, "not a readable .npy array", labels=tmp_path / "objects.npy")
    (tmp_path / "words.txt").write_text("3\ncat\n")
    _refused(path, "line 2 ('cat') is not an integer", labels=tmp_path / "words.txt")
    (tmp_path / "range.txt").write_text("".join(f"{v}\n" for v in [0] * 7 + [-1] + [0] * 56))
    _refused(path, "label -1 of image 7 is outside [0, 10)", labels=tmp_path / "range.txt")
    first = int(np.flatnonzero(y >= 5)[0])  # the first label a 5-class model does not have is named
    _refused(path, f"label {y[first]} of image {first} is outside [0, 5)", labels=_save_txt(tmp_path / "five.txt", y),
             num_classes=5)


def _save_txt(path: Path, y: np.ndarray) -> Path:
    path.write_text("\n".join(str(v) for v in y))
    return path


def test_bad_folders(png_folder: Path, tmp_path: Path) -> None:
    _refused(tmp_path, "holds no class subfolders", "one subfolder per class")
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "notes.txt").write_text("no images")
    _refused(tmp_path, "holds no PNG, JPEG or BMP files")
    (tmp_path / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    _refused(tmp_path, "broken.png is not a readable PNG, JPEG or BMP image", "replace or remove it")
    _refused(png_folder, "2 class folders, the model has 1 classes", "folder 'dog' would be label 1",
             num_classes=1)
    _refused(png_folder, "5-channel images", "pass an .npz", shape=(32, 32, 5))
