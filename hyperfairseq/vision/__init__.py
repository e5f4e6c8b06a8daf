"""Main networks for the static-hypernetwork image experiments (paper §4.1, §4.2; Tables 2, 7).

Imports only torch and ``hyperfairseq.modules`` (design.md).  ``build_model(arch)`` builds one of
``wrn_40_1``, ``hyper_wrn_40_1``, ``wrn_40_2``, ``hyper_wrn_40_2``, ``convnet``, ``hyper_convnet``.
"""
from hyperfairseq.vision.architectures import (
    ARCHITECTURES,
    UnknownArchitectureError,
    build_model,
    export_plain,
    plain_arch,
)
from hyperfairseq.vision.kernels import PlainKernels
from hyperfairseq.vision.models import ConvNet, PreActBlock, WideResNet

__all__ = [
    "ARCHITECTURES", "UnknownArchitectureError", "build_model", "export_plain", "plain_arch",
    "PlainKernels", "ConvNet", "PreActBlock", "WideResNet",
]
