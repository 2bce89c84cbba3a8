"""Taking clips from a long video: seeking to key frames vs decoding everything.

Writes one synthetic video (``resnet3d.data.synthetic_video``: a moving square, H.264 via libx264
when PyAV has it, else MPEG-4) with a key frame every ``--keyint`` frames, then times, side by
side in one process on the same warm file (OS page cache):

* ``read_clips`` (seek): seek to the key frame before each clip, decode forward to the clip,
  convert only the clip's frames to RGB (the library's default);
* ``read_clips(seek=False)``: decode sequentially from the start up to the last frame asked
  for (what a reader without seeking does; the library's fallback);
* decode all: decode every frame of the video to RGB arrays (one shared swscale context,
  as the library converts), then index the clips (what "load the video, then sample" costs).

for 1, 4 and 16 clips of 16 consecutive frames (``sample_clips(..., start="uniform")``).
Medians of ``2 x --repeat`` calls, in blocks interleaved over two passes
(``resnet3d.benchmarking.timing.time_blocked``) after one warm-up call; the frames each path
decodes are counted too.

Usage::

    python benchmarks/bench_video.py                  # 128 x 128, 60 s at 25 fps, keyint 50
    python benchmarks/bench_video.py --quick          # 64 x 64, 10 s
    python benchmarks/bench_video.py --keyint 250     # libx264's default GOP
    python benchmarks/bench_video.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import time_blocked

from resnet3d.data.synthetic_video import generate_video, video_codec, write_video
from resnet3d.data.video import _Decoder, read_clips, read_video_info, sample_clips


def decode_all(path: Path, clips: np.ndarray) -> np.ndarray:
    import av
    from av.video.reformatter import VideoReformatter

    rgb = VideoReformatter()  # one swscale context for all frames, as read_frames does
    with av.open(os.fspath(path)) as container:
        frames = [rgb.reformat(f, format="rgb24").to_ndarray() for f in container.decode(video=0)]
    return np.stack(frames)[clips]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128, help="frame height and width")
    parser.add_argument("--seconds", type=int, default=60, help="video length")
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--keyint", type=int, default=50, help="frames between key frames")
    parser.add_argument("--frames-per-clip", type=int, default=16)
    parser.add_argument("--clips", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--repeat", type=int, default=5, help="timed calls per pass")
    parser.add_argument("--quick", action="store_true", help="64 x 64, 10 s, 2 repeats")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.seconds, args.repeat = 64, 10, 2

    n = args.seconds * args.fps
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long.mp4"
        frames = generate_video("right", frames=n, size=args.size, seed=0)
        start = time.perf_counter()
        write_video(path, frames, fps=args.fps, keyframe_interval=args.keyint)
        encode_s = time.perf_counter() - start
        del frames
        info = read_video_info(path)
        for count in args.clips:
            clips = sample_clips(info, args.frames_per_clip, clips=count)
            wanted = info.start_time + np.unique(clips) / info.fps
            seeking, sequential = _Decoder(info, True, 10**9), _Decoder(info, False, 10**9)
            seeking.run(wanted)
            sequential.run(wanted)
            a = read_clips(path, clips, info=info)
            b = read_clips(path, clips, info=info, seek=False)
            c = decode_all(path, clips)
            assert np.array_equal(a, b) and np.array_equal(a, c), "paths disagree"
            timings = time_blocked(
                {
                    "seek": lambda clips=clips: read_clips(path, clips, info=info),
                    "sequential": lambda clips=clips: read_clips(
                        path, clips, info=info, seek=False
                    ),
                    "all": lambda clips=clips: decode_all(path, clips),
                },
                warmup=1,
                calls=args.repeat,
                passes=2,
            )
            t_seek, t_seq, t_all = (timings[k].median for k in ("seek", "sequential", "all"))
            rows.append(
                {
                    "clips": count,
                    "frames_wanted": int(clips.size),
                    "seek_ms": 1000 * t_seek,
                    "seek_decoded": seeking.decoded,
                    "seeks": seeking.seeks,
                    "sequential_ms": 1000 * t_seq,
                    "sequential_decoded": sequential.decoded,
                    "decode_all_ms": 1000 * t_all,
                    "decode_all_decoded": info.frames,
                    "speedup_vs_all": t_all / t_seek,
                    "speedup_vs_sequential": t_seq / t_seek,
                }
            )
    setup = {
        "video": f"{args.size} x {args.size}, {args.seconds} s at {args.fps} fps ({n} frames), "
        f"{video_codec()}, key frame every {args.keyint} frames, encoded in {encode_s:.1f} s",
        "clip": f"{args.frames_per_clip} consecutive frames, uniform starts",
        "timing": f"median of 2 passes x {args.repeat} calls, interleaved",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}",
    }
    import av

    setup["pyav"] = f"PyAV {av.__version__}"
    lines = [f"{k}: {v}" for k, v in setup.items()]
    lines += [
        "",
        "| clips | frames wanted | seek (ms) | frames decoded | sequential to last clip (ms) "
        "| frames decoded | decode all (ms) | seek speed-up vs all | vs sequential |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['clips']} | {r['frames_wanted']} | {r['seek_ms']:.1f} | {r['seek_decoded']} "
            f"| {r['sequential_ms']:.1f} | {r['sequential_decoded']} | {r['decode_all_ms']:.1f} "
            f"| {r['speedup_vs_all']:.1f}x | {r['speedup_vs_sequential']:.1f}x |"
        )
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps({"setup": setup, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
