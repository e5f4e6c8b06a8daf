"""hyperfairseq: HyperNetworks (Ha, Dai & Le, ICLR 2017) as a fairseq plugin."""

from setuptools import find_packages, setup

setup(
    name="hyperfairseq",
    version="0.1.0",
    description="HyperLSTMs and static hypernetworks for fairseq (Ha, Dai & Le, HyperNetworks, ICLR 2017)",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.9",
    packages=find_packages(include=["hyperfairseq", "hyperfairseq.*"]),
    # the fused CPU cell kernels, compiled on first use by torch.utils.cpp_extension (needs a C++ compiler)
    package_data={"hyperfairseq.modules": ["csrc/*.cpp"]},
    install_requires=[
        # torch.load defaults to weights_only=True from 2.6 on; the plugin also passes it explicitly
        # (hyperfairseq/checkpoint_files.py), but fairseq's own tools rely on the default
        "torch>=2.6",
        "ninja",  # torch.utils.cpp_extension builds the fused CPU kernels with it
        # Official fairseq 0.12.2 fails to import on Python >= 3.11 (dataclass mutable defaults);
        # ve-fairseq 0.12.3 is upstream fairseq with that fix, prebuilt for cp311 / cp312.
        "fairseq==0.12.2; python_version < '3.11'",
        "ve-fairseq==0.12.3; python_version >= '3.11'",
        "hydra-core>=1.0.7",
        "omegaconf>=2.0.6",
        "numpy",
        "sentencepiece",
        "sacrebleu>=2.0",
        "tensorboardX",  # fairseq's --tensorboard-logdir writer (without it every fairseq CLI asks for it)
    ],
    extras_require={
        "vision": ["torchvision", "Pillow", "tqdm", "matplotlib"],
        "handwriting": ["matplotlib", "scipy", "dtaidistance"],  # dtaidistance: synthesis legibility (DTW)
        "plots": ["matplotlib"],
        "dev": [
            "pytest", "pytest-xdist>=3.8", "hypothesis", "torchvision", "Pillow", "tqdm", "matplotlib", "scipy",
            "pyyaml", "ruff", "dtaidistance",
        ],
    },
    classifiers=[
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "License :: OSI Approved :: MIT License",
    ],
)
