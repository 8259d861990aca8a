"""``python -m datasets.demo [--root ./demo_data] [--seed 0] [--size 64] [--no-flow] [--force] [CSV ...]``"""
import sys

from datasets.demo.tree import main
from utils import cli

sys.exit(cli.run(main, prog="python -m datasets.demo"))
