"""An independent reference for the sample lists the original project builds, used as the oracle of
tests/test_frame_index_original.py.  Written from the behaviour of the original's annotation parsers and
``prepare()`` methods in gsig/temporal-fields ``pytorch/datasets/`` (``charadesrgb.py``,
``charadesrgbsubset.py``, ``jesterrgb.py``, ``somethingrgb.py``); none of its code is reused.

Every ``*_prepare`` returns ``{'image_paths', 'targets', 'ids', 'times'}``, four parallel lists with one
entry per sample.  The videos are visited in the order of the labels dict, i.e. annotation-file order (the
original walked a Python 2 dict, whose order is not reproducible).  A video's frames are the ``*.jpg`` in
``<root>/<id>``; a video with none contributes nothing (but, for the subset, still counts as a row read).
With n frames, frame numbers are 1-based, and:

* train / val, all datasets: the frames 1, 5, 9, ... below n (offsets ``0, 4, ... < n-1``); the sample's
  time is the 0-based offset.  Charades labels each frame with an int32 0/1 vector over its classes, set for
  every action whose (start, end) strictly contains offset/24 s; Jester and Something-Something give every
  frame the video's one class as an int32 one-hot vector.
* val_video, all datasets: ``testGAP`` frames (50; 25 for the subset) at ``floor(linspace(0, n-1, testGAP))
  + 1`` computed in floating point, each with that frame number as its time and the video-level target
  (Charades: every class among its actions; otherwise the one class), one tensor shared by the video.
* Charades subset: only the first 101 rows of the annotation are read, frameless ones included.  Its
  train / val make one sample per (action, frame strictly inside it), actions in annotation order and frames
  ascending within each, with the plain class index (a Python int) as target; a frame inside several
  actions is repeated, a video without actions gives nothing.  Its val_video is the Charades one over those
  rows with 25 frames a video.

Charades frames are ``<root>/<id>/<id>-NNNNNN.jpg``; ``single_label_prepare`` takes Jester's and Something's
as ``frame_name(iddir, vid, frame)``.  Labels files are passed in (the original had fixed paths).
"""
import csv
import json
from glob import glob
from itertools import islice

import numpy as np
import torch

FPS, STRIDE = 24, 4
KEYS = ('image_paths', 'targets', 'ids', 'times')
charades_name = '{}/{}-{:06d}.jpg'.format  # (folder, vid, frame)


def cls2int(name):
    """'c042' -> 42."""
    return int(name[1:])


def _action(text):
    cls, start, end = text.split(' ')
    return {'class': cls, 'start': float(start), 'end': float(end)}


def parse_charades_csv(filename):
    """id -> list of {'class', 'start', 'end'} from the Charades annotation csv, in file order."""
    with open(filename) as f:
        return {row['id']: [_action(a) for a in row['actions'].split(';')] if row['actions'] else []
                for row in csv.DictReader(f)}


def parse_jester_labels(filename):
    """Class name -> its line number."""
    with open(filename) as f:
        return {name.strip(): k for k, name in enumerate(f)}


def parse_jester_csv(filename, cls2int):
    """id -> {'class': index} from 'id;class name' lines."""
    with open(filename) as f:
        pairs = [line.strip().split(';') for line in f]
    return {vid: {'class': cls2int[name]} for vid, name in pairs}


def parse_something_labels(filename):
    with open(filename) as f:
        return json.load(f)


def parse_something_json(filename, cls2int):
    """id -> {'class': cls2int[template without its brackets]}."""
    with open(filename) as f:
        rows = json.load(f)
    unbracket = str.maketrans('', '', '[]')
    return {r['id']: {'class': cls2int[r['template'].translate(unbracket)]} for r in rows}


def _with_frames(path, items):
    """(vid, label, folder, n) for each (vid, label) whose folder holds n > 0 frames."""
    for vid, label in items:
        folder = '{}/{}'.format(path, vid)
        n = len(glob(folder + '/*.jpg'))
        if n:
            yield vid, label, folder, n


def _strided(n):
    """0-based offsets of the train / val frames."""
    return np.arange(0, n - 1, STRIDE)


def _spread(n, count):
    """1-based frame numbers of the val_video frames."""
    return (np.floor(np.linspace(0, n - 1, count)).astype(np.int64) + 1).tolist()


def _onehot(classes, num_classes):
    vec = torch.zeros(num_classes, dtype=torch.int32)
    vec[torch.as_tensor(classes, dtype=torch.long)] = 1
    return vec


def _inside(label, offsets):
    """Boolean (actions x frames): action strictly contains the frame's time offset / FPS."""
    t = offsets / float(FPS)
    span = np.array([(a['start'], a['end']) for a in label], dtype=float).reshape(-1, 2)
    return (span[:, :1] < t) & (t < span[:, 1:])


def _as_dict(samples):
    columns = list(zip(*samples)) or [()] * len(KEYS)
    return {key: list(col) for key, col in zip(KEYS, columns)}


def charades_prepare(path, labels, split, num_classes=157, testGAP=50):
    samples = []
    for vid, label, folder, n in _with_frames(path, labels.items()):
        classes = np.array([cls2int(a['class']) for a in label], dtype=np.int64)
        if split == 'val_video':
            target = _onehot(classes, num_classes)
            samples += [(charades_name(folder, vid, f), target, vid, f) for f in _spread(n, testGAP)]
            continue
        offsets = _strided(n)
        hits = _inside(label, offsets)
        samples += [(charades_name(folder, vid, o + 1), _onehot(classes[hits[:, j]], num_classes), vid, o)
                    for j, o in enumerate(offsets.tolist())]
    return _as_dict(samples)


def subset_prepare(path, labels, split, num_classes=157):
    rows = list(islice(labels.items(), 101))
    if split == 'val_video':
        return charades_prepare(path, dict(rows), split, num_classes, testGAP=25)
    samples = []
    for vid, label, folder, n in _with_frames(path, rows):
        offsets = _strided(n)
        for a, j in zip(*np.nonzero(_inside(label, offsets))):  # row-major: action by action
            o = int(offsets[j])
            samples.append((charades_name(folder, vid, o + 1), cls2int(label[a]['class']), vid, o))
    return _as_dict(samples)


def single_label_prepare(path, labels, split, num_classes, frame_name):
    """Jester / Something-Something; ``frame_name(iddir, vid, frame)`` gives a frame's path."""
    samples = []
    for vid, label, folder, n in _with_frames(path, labels.items()):
        target = _onehot([int(label['class'])], num_classes)
        if split == 'val_video':
            picks = [(f, f, target) for f in _spread(n, 50)]
        else:
            picks = [(o + 1, o, target.clone()) for o in _strided(n).tolist()]
        samples += [(frame_name(folder, vid, f), tgt, vid, t) for f, t, tgt in picks]
    return _as_dict(samples)
