"""``python -m datasets.demo [--root ./demo_data] [--seed 0] [--size 64] [--no-flow] [--force] [CSV ...]``"""
from datasets.demo.tree import main

main()
