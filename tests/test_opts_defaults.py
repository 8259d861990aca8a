"""opts.py against the original's opts.py: every default that differs is said in docs/differences.md (linked from the README)."""

import opts as options

# gsig/temporal-fields, pytorch/opts.py (data: the values, not the code)
ORIGINAL_DEFAULTS = dict(
    data="/scratch/gsigurds/Charades_v1_rgb/", dataset="fake", train_file="./Charades_v1_train.csv",
    val_file="./Charades_v1_test.csv", arch="alexnet", workers=4, epochs=20, start_epoch=0, batch_size=256,
    lr=1e-3, lr_decay_rate=6, momentum=0.9, weight_decay=1e-4, print_freq=10, resume="", evaluate=False,
    pretrained=False, pretrained_weights="", inputsize=224, world_size=1, manual_seed=0,
    dist_url="tcp://224.66.41.62:23456", dist_backend="gloo", train_size=1.0, val_size=1.0,
    cache_dir="./cache/", name="test", nclass=157, nhidden=10, temporal_weight=1.0, temporalloss_weight=1.0,
    accum_grad=1, memory_decay=0.9, memory_size=20, sigma=150, adjustment=False, originalloss_weight=1,
    balanceloss=False, window_smooth=3)


def test_defaults_that_differ_from_the_original_are_documented(repo_root):
    ours = vars(options.build_parser().parse_args([]))
    differ = sorted(k for k, v in ORIGINAL_DEFAULTS.items() if ours[k] != v)
    assert {"dataset", "arch", "dist_backend"} <= set(differ)
    section = (repo_root / "docs" / "differences.md").read_text(encoding="utf-8")
    undocumented = [k for k in differ if f"`--{k.replace('_', '-')}" not in section]
    assert not undocumented, f"defaults that differ from the original's, not in docs/differences.md: {undocumented}"
