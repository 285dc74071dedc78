"""Build a segmentor from a config (no weights loaded) and print its
per-module parameter table.

Usage:
    python tools/model_summary.py configs/interformer_light_coco_lvis_320k.py
"""
import argparse

from interformer.apis import init_model
from interformer.utils import format_parameter_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('config', nargs='+', help='config file(s)')
    args = parser.parse_args()
    for config in args.config:
        model = init_model(config)
        print(format_parameter_table(model, title=config))
        print()


if __name__ == '__main__':
    main()
