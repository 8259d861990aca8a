"""A port of the original's sample lists (the ``prepare()`` of its dataset classes) to Python 3, as a
reference for tests/test_frame_index_original.py.

Sources: gsig/temporal-fields, commit 924e66f, ``pytorch/datasets/``: ``charadesrgb.py`` (cited ``R:<line>``),
``charadesrgbsubset.py`` (``S:<line>``), ``jesterrgb.py`` (``J:<line>``), ``somethingrgb.py`` (``T:<line>``).
Each returns the original's ``{'image_paths', 'targets', 'ids', 'times'}``, built loop for loop as there.
What changes: ``dict.items()`` for Python 2's ``iteritems()`` (so the videos come in file order, where the
original's came in a Python 2 dict's order), ``//`` nowhere needed, the progress prints left out, and the
labels files passed in rather than read from the author's hard-coded paths (``J:35``, ``T:35``).  The
ports repeat each other where the original's files do (its val_video loops): each stays a copy of its file.
"""
from __future__ import annotations

import csv
import json
from glob import glob

import numpy as np
import torch


def parse_charades_csv(filename):  # R:13-27 (= S:13-27)
    labels = {}
    with open(filename) as f:
        for row in csv.DictReader(f):
            vid = row['id']
            actions = row['actions']
            if actions == '':
                actions = []
            else:
                actions = [a.split(' ') for a in actions.split(';')]
                actions = [{'class': x, 'start': float(y), 'end': float(z)} for x, y, z in actions]
            labels[vid] = actions
    return labels


def cls2int(x):  # R:30-31
    return int(x[1:])


def charades_prepare(path, labels, split, num_classes=157, testGAP=50):  # R:88-125
    FPS, GAP = 24, 4
    image_paths, targets, ids, times = [], [], [], []
    for i, (vid, label) in enumerate(labels.items()):
        iddir = path + '/' + vid
        n = len(glob(iddir + '/*.jpg'))
        if n == 0:
            continue
        if split == 'val_video':
            target = torch.IntTensor(num_classes).zero_()
            for x in label:
                target[cls2int(x['class'])] = 1
            for loc in np.linspace(0, n - 1, testGAP):
                image_paths.append('{}/{}-{:06d}.jpg'.format(iddir, vid, int(np.floor(loc)) + 1))
                targets.append(target)
                ids.append(vid)
                times.append(int(np.floor(loc)) + 1)
        else:
            for ii in range(0, n - 1, GAP):
                target = torch.IntTensor(num_classes).zero_()
                for x in label:
                    if x['start'] < ii / float(FPS) < x['end']:
                        target[cls2int(x['class'])] = 1
                image_paths.append('{}/{}-{:06d}.jpg'.format(iddir, vid, ii + 1))
                targets.append(target)
                ids.append(vid)
                times.append(ii)
    return {'image_paths': image_paths, 'targets': targets, 'ids': ids, 'times': times}


def subset_prepare(path, labels, split, num_classes=157):  # S:87-123
    FPS, GAP, testGAP = 24, 4, 25
    image_paths, targets, ids, times = [], [], [], []
    for i, (vid, label) in enumerate(labels.items()):
        if i > 100:
            break
        iddir = path + '/' + vid
        n = len(glob(iddir + '/*.jpg'))
        if n == 0:
            continue
        if split == 'val_video':
            target = torch.IntTensor(num_classes).zero_()
            for x in label:
                target[cls2int(x['class'])] = 1
            for loc in np.linspace(0, n - 1, testGAP):
                image_paths.append('{}/{}-{:06d}.jpg'.format(iddir, vid, int(np.floor(loc)) + 1))
                targets.append(target)
                ids.append(vid)
                times.append(int(np.floor(loc)) + 1)
        else:
            for x in label:
                for ii in range(0, n - 1, GAP):
                    if x['start'] < ii / float(FPS) < x['end']:
                        image_paths.append('{}/{}-{:06d}.jpg'.format(iddir, vid, ii + 1))
                        targets.append(cls2int(x['class']))  # a class index, not a vector
                        ids.append(vid)
                        times.append(ii)
    return {'image_paths': image_paths, 'targets': targets, 'ids': ids, 'times': times}


def parse_jester_labels(filename):  # J:11-16
    labels = {}
    with open(filename) as f:
        for i, line in enumerate(f):
            labels[line.strip()] = i
    return labels


def parse_jester_csv(filename, cls2int):  # J:19-27
    labels = {}
    with open(filename) as f:
        for row in f:
            vid, label = row.strip().split(';')
            labels[vid] = {'class': cls2int[label]}
    return labels


def parse_something_labels(filename):  # T:12-15
    with open(filename) as f:
        return json.load(f)


def parse_something_json(filename, cls2int):  # T:18-27
    labels = {}
    with open(filename) as f:
        data = json.load(f)
    for row in data:
        labels[row['id']] = {'class': cls2int[row['template'].replace('[', '').replace(']', '')]}
    return labels


def single_label_prepare(path, labels, split, num_classes, frame_name):  # J:43-80 = T:43-80
    """``frame_name(iddir, vid, frame)``: ``'{}/{:05d}.jpg'`` for Jester (J:62, J:74), ``'{}/{}-{:06d}.jpg'``
    for Something-Something (T:62, T:74)."""
    FPS, GAP, testGAP = 24, 4, 50
    image_paths, targets, ids, times = [], [], [], []
    for i, (vid, label) in enumerate(labels.items()):
        iddir = path + '/' + vid
        n = len(glob(iddir + '/*.jpg'))
        if n == 0:
            continue
        if split == 'val_video':
            target = torch.IntTensor(num_classes).zero_()
            target[int(label['class'])] = 1
            for loc in np.linspace(0, n - 1, testGAP):
                image_paths.append(frame_name(iddir, vid, int(np.floor(loc)) + 1))
                targets.append(target)
                ids.append(vid)
                times.append(int(np.floor(loc)) + 1)
        else:
            for ii in range(0, n - 1, GAP):
                target = torch.IntTensor(num_classes).zero_()
                target[int(label['class'])] = 1
                image_paths.append(frame_name(iddir, vid, ii + 1))
                targets.append(target)
                ids.append(vid)
                times.append(ii)
    return {'image_paths': image_paths, 'targets': targets, 'ids': ids, 'times': times}
