"""Build the texture demo data set (MVTec AD layout) into a folder."""
import argparse

from anomaly_plugin.demo import DEFECT_TYPES, TEXTURES, build_demo_dataset


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Build the texture demo data set in the MVTec AD layout.')
    parser.add_argument('out_dir', help='output folder')
    parser.add_argument('--seed', type=int, default=0, help='random seed')
    parser.add_argument('--tile', type=int, default=128, help='tile side length')
    parser.add_argument('--categories', nargs='+', default=list(TEXTURES),
                        choices=TEXTURES, help='textures to build')
    parser.add_argument('--overwrite', action='store_true',
                        help='rebuild even if the folder holds a data set')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    meta = build_demo_dataset(args.out_dir, categories=args.categories,
                              tile=args.tile, seed=args.seed,
                              overwrite=args.overwrite)
    p = meta['params']
    state = (f"built in {meta['build_seconds']:.2f} s" if meta['built']
             else 'already up to date')
    print(f"Demo data set in {args.out_dir} ({state}): {', '.join(p['categories'])}; "
          f"per category {p['num_train']} train, {p['num_test_good']} good test, "
          f"{p['num_test_defect']} x {len(DEFECT_TYPES)} defective test images.")


if __name__ == '__main__':
    main()
