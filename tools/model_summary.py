"""Build a segmentor from a config (no weights loaded) and print its
per-module parameter table.

Usage:
    python tools/model_summary.py configs/interformer_light_coco_lvis_320k.py
"""
import argparse

from interformer.apis import init_model
from interformer.utils import format_parameter_table
from interformer.utils.cli import add_debug_flag, run_tool
from interformer.utils.config import read_config


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('config', nargs='+', help='config file(s)')
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    for config in args.config:
        model = init_model(read_config(config))
        print(format_parameter_table(model, title=config))
        print()


if __name__ == '__main__':
    run_tool(main)
