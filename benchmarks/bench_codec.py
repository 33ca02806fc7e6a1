"""For scale: x265 (libx265 through imageio_ffmpeg's ffmpeg) encode / decode frames/s and bpp on the sample clips,
beside gvc's smoke model coding all-intra through gvc.codec.coder.

    python benchmarks/bench_codec.py [--markdown | --json] [--device cpu|cuda] [--quick] [--crf 28]

x265: `-c:v libx265 -preset medium -tune zerolatency -x265-params bframes=0:pools=N:frame-threads=1 -crf CRF`
(low delay, no B-frames, N = --threads, 1 by default like gvc's torch threads),
from raw 8-bit YUV 4:2:0 of the first N frames (decoded from the mp4 beforehand, not timed) to a raw .hevc
stream; decode = ffmpeg .hevc -> raw YUV file. Each timing is the wall time of one ffmpeg process (its start-up,
measured separately, included). bpp = 8 * stream bytes / (frames * width * height); PSNR-Y on 8-bit luma.
gvc: the smoke IFrameCodec briefly fitted on carphone crops (not a trained model: its quality says nothing
about the architecture), every frame an I-frame, encode_video / decode_video from frames already in memory;
bpp from the .gvc file size (container included).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import (
    Stopwatch,
    base_parser,
    build_iframe,
    clip_paths,
    emit,
    fit_iframe,
    fmt,
    memory_reader,
    read_frames,
    section,
    seed_all,
    setup,
    table,
    time_entropy_coding,
)


def ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def run_timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t0


def psnr_y(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR (dB) of two uint8 luma stacks (gvc.eval.metrics.psnr_planes: one MSE over the whole stack)."""
    from gvc.eval.metrics import psnr_planes

    return psnr_planes(a, b)


def read_yuv_y(path: Path, w: int, h: int, n: int) -> np.ndarray:
    """Luma planes (n, h, w) uint8 of a raw I420 file."""
    fs = w * h * 3 // 2
    raw = np.fromfile(path, dtype=np.uint8)[: n * fs].reshape(n, fs)
    return raw[:, : w * h].reshape(n, h, w)


def x265_clip(name: str, path: Path, frames: int, crf: int, threads: int, tmp: Path) -> dict:
    from gvc.data.io import open_video

    with open_video(path) as r:
        w, h, fps, n_all = r.width, r.height, r.fps, len(r)
    n = min(frames, n_all)
    ff = ffmpeg()
    src = tmp / f"{name}.yuv"
    subprocess.run(
        [
            ff,
            "-v",
            "error",
            "-i",
            str(path),
            "-frames:v",
            str(n),
            "-f",
            "rawvideo",
            "-pix_fmt",
            "yuv420p",
            "-y",
            str(src),
        ],
        check=True,
        capture_output=True,
    )
    hevc, dec = tmp / f"{name}.hevc", tmp / f"{name}_dec.yuv"
    enc_cmd = [ff, "-v", "error", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{w}x{h}", "-r", f"{fps:g}"]
    enc_cmd += ["-i", str(src), "-c:v", "libx265", "-preset", "medium", "-tune", "zerolatency"]
    params = f"bframes=0:log-level=error:pools={threads}:frame-threads=1"
    enc_cmd += ["-x265-params", params, "-crf", str(crf), "-f", "hevc", "-y", str(hevc)]
    t_enc = run_timed(enc_cmd)
    dec_cmd = [
        ff,
        "-v",
        "error",
        "-threads",
        str(threads),
        "-i",
        str(hevc),
        "-f",
        "rawvideo",
        "-pix_fmt",
        "yuv420p",
    ]
    t_dec = run_timed([*dec_cmd, "-y", str(dec)])
    size = hevc.stat().st_size
    return {
        "clip": name,
        "size": f"{w}x{h}",
        "frames": n,
        "enc_fps": n / t_enc,
        "dec_fps": n / t_dec,
        "bpp": 8 * size / (n * w * h),
        "psnr_y": psnr_y(read_yuv_y(src, w, h, n), read_yuv_y(dec, w, h, n)),
    }


def ffmpeg_startup_s() -> float:
    """Wall time of a trivial ffmpeg run (one 16x16 frame to the null muxer): its process start-up cost."""
    cmd = [
        ffmpeg(),
        "-v",
        "error",
        "-f",
        "lavfi",
        "-i",
        "color=c=black:s=16x16",
        "-frames:v",
        "1",
        "-f",
        "null",
        "-",
    ]
    return min(run_timed(cmd) for _ in range(3))


def gvc_intra(device, fit_steps: int, frames: int, tmp: Path) -> dict:
    from gvc.codec.coder import decode_video, encode_video
    from gvc.data.color import rgb_to_yuv420

    seed_all(0)
    codec = build_iframe("smoke")
    fit = fit_iframe(codec, read_frames("carphone_pristine", 32), fit_steps)
    codec = codec.to(device)
    rows = []
    for name in clip_paths():
        reader = memory_reader(name, frames)
        out = tmp / f"{name}.gvc"
        encode_video(reader, codec, out, frames=1, estimate=False)  # warm-up
        sw = Stopwatch(device)
        with time_entropy_coding(sw, "enc entropy"), sw("enc"):
            st = encode_video(reader, codec, out, estimate=False)
        with time_entropy_coding(sw, "dec entropy"), sw("dec"):
            dec = list(decode_video(out, codec))
        n = st.num_frames
        src_y = np.stack([np.asarray(reader.read_yuv(i)[0]) for i in range(n)])
        dec_y = np.stack([np.asarray(rgb_to_yuv420(f, reader.matrix, reader.full_range)[0]) for f in dec])
        rows.append(
            {
                "clip": name,
                "size": f"{st.width}x{st.height}",
                "frames": n,
                "enc_fps": n / sw.total["enc"],
                "dec_fps": n / sw.total["dec"],
                "enc_entropy_share": sw.total["enc entropy"] / sw.total["enc"],
                "dec_entropy_share": sw.total["dec entropy"] / sw.total["dec"],
                "bpp": st.bpp,
                "psnr_y": psnr_y(src_y, dec_y),
            }
        )
    return {"fit": fit, "rows": rows}


def run(args, device) -> dict:
    quick = args.quick
    res = {"device": str(device), "quick": quick, "crf": args.crf, "threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        res["ffmpeg_startup_s"] = ffmpeg_startup_s()
        res["x265"] = [
            x265_clip(n, p, 16 if quick else 60, args.crf, args.threads or 1, tmp)
            for n, p in clip_paths().items()
        ]
        res["gvc"] = gvc_intra(device, 40 if quick else 100, 3 if quick else 8, tmp)
    return res


def markdown(res: dict) -> str:
    rows = []
    for r in res["x265"]:
        rows.append(
            [
                "x265 medium zerolatency bframes=0 crf " + str(res["crf"]),
                r["clip"],
                r["size"],
                r["frames"],
                fmt(r["enc_fps"]),
                fmt(r["dec_fps"]),
                fmt(r["bpp"]),
                fmt(r["psnr_y"]),
                "-",
            ]
        )
    for r in res["gvc"]["rows"]:
        rows.append(
            [
                "gvc smoke all-intra (briefly fitted)",
                r["clip"],
                r["size"],
                r["frames"],
                fmt(r["enc_fps"]),
                fmt(r["dec_fps"]),
                fmt(r["bpp"]),
                fmt(r["psnr_y"]),
                f"{100 * r['enc_entropy_share']:.1f}% / {100 * r['dec_entropy_share']:.1f}%",
            ]
        )
    t = table(
        [
            "codec",
            "clip",
            "size",
            "frames",
            "encode fps",
            "decode fps",
            "bpp (file)",
            "PSNR-Y (dB)",
            "entropy coding share enc / dec",
        ],
        rows,
    )
    fit = res["gvc"]["fit"]
    settings = [
        f"Device (gvc): {res['device']}" + ("; --quick" if res["quick"] else ""),
        f"Threads: gvc torch intra-op {res['threads']}; x265 pools={res['threads']} frame-threads=1, ffmpeg decode "
        f"-threads {res['threads']}. 2 cores shared with other jobs: timings under load.",
        f"x265 timings are whole ffmpeg processes; a trivial ffmpeg run takes {fmt(res['ffmpeg_startup_s'])} s here.",
        f"gvc smoke model: fitted {fit['steps']} steps ({fmt(fit['seconds'])} s) on carphone crops ({fmt(fit['psnr'])} dB, "
        f"{fmt(fit['bpp'])} bpp at its last step); far from a trained codec, so compare speed, not quality.",
    ]
    return section("gvc vs x265, for scale (bench_codec)", torch.device(res["device"]), settings, [t])


def main(argv=None) -> int:
    p = base_parser(__doc__)
    p.add_argument("--crf", type=int, default=28, help="x265 constant rate factor (28 = x265's default)")
    args = p.parse_args(argv)
    device = setup(args)
    os.environ.setdefault("TQDM_DISABLE", "1")
    emit(args, run(args, device), markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
