"""main.py shows one progress bar over the whole run (every phase's batches, every epoch) for its ETA."""
import main


class Recorder:
    """Stands in for tqdm: records the bar's settings and updates."""

    bars: list = []

    def __init__(self, total=None, initial=0, **kwargs):
        self.total, self.n, self.updates, self.kwargs, self.closed = total, initial, [], kwargs, False
        Recorder.bars.append(self)

    def update(self, n=1):
        self.n += n
        self.updates.append(n)

    def close(self):
        self.closed = True


def test_one_bar_over_all_epochs(tmp_path, monkeypatch):
    monkeypatch.setattr(main, "tqdm", Recorder)
    Recorder.bars = []
    flags = ["--dataset", "fake", "--arch", "resnet18", "--inputsize", "16", "--nclass", "4", "--nhidden", "2",
             "--batch-size", "32", "--train-size", "0.5", "--val-size", "0.5", "--test-frames", "2",
             "--workers", "0", "--device", "cpu", "--print-freq", "1000", "--cache-dir", str(tmp_path),
             "--name", "bar"]
    main.main(flags + ["--epochs", "1"])
    (bar,) = Recorder.bars
    # fake: 192 train frames -> 6 batches of 32 (half of them per epoch: 3), 64 val frames -> 2 batches
    # (half: 1), 8 videos (one batch each)
    assert bar.updates == [3, 1, 8] and bar.total == 12 and bar.n == bar.total and bar.closed
    assert bar.kwargs["smoothing"] == 0      # ETA from the run's average rate, not the last phase's
    Recorder.bars = []
    main.main(flags + ["--epochs", "2", "--resume", str(tmp_path / "bar" / "model.pth.tar")])
    (bar,) = Recorder.bars
    assert bar.total == 24 and bar.updates == [3, 1, 8] and bar.n == bar.total   # starts at epoch 2 of 2
