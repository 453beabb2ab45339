"""Draw the synthetic anomalies of each kind on an image of your own and write a
panel: one row per kind, the mask of each draw outlined in red.

    python tools/synthesis_samples.py IMAGE OUT.png [--size 256] [--samples 4]
        [--texture-dir DIR] [--seed 0]
"""
import argparse
import sys

import cv2

from anomaly_plugin.datasets import read_image
from anomaly_plugin.visualization import synthesis_panel, write_image


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('image', help='a normal image')
    parser.add_argument('out', help='the panel (PNG)')
    parser.add_argument('--size', type=int, default=256, help='side the image is resized to')
    parser.add_argument('--samples', type=int, default=4, help='draws per kind')
    parser.add_argument('--texture-dir', help='a folder of textures for a fourth row')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    image = cv2.resize(read_image(args.image), (args.size, args.size),
                       interpolation=cv2.INTER_AREA)
    kinds = {
        'Perlin, procedural': dict(type='PerlinAnomaly', source='procedural'),
        'Perlin, self': dict(type='PerlinAnomaly', source='self'),
        'CutPaste': dict(type='CutPasteAnomaly'),
        'CutPaste-Scar': dict(type='ScarAnomaly'),
    }
    if args.texture_dir:
        kinds['Perlin, folder'] = dict(type='PerlinAnomaly', source=args.texture_dir)
    panel = synthesis_panel(image, kinds, samples=args.samples, seed=args.seed)
    try:
        write_image(args.out, panel)
    except OSError as err:
        print(f'cannot write {args.out}: {err}', file=sys.stderr)
        return 1
    print(f'wrote {args.out} ({len(kinds)} kinds x {args.samples} samples)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
