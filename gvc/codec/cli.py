"""`gvc encode | decode | info`: the codec commands (registered on the top-level `gvc` parser by gvc.cli).

    gvc encode INPUT -o OUT.gvc --model MODEL.gvcm [-y] [--gop N] [--frames N] [--width W --height H --fps F]
               [--q Q | --bpp B [--bpp-tolerance T]]
               [--refine-steps N [--refine-rate objective|hold] [--refine-lr LR] [--refine-no-perceptual]]
    gvc decode IN.gvc -o OUT.{y4m,yuv,mp4,mkv,...} | -o FOLDER  --model MODEL.gvcm [-y]
    gvc info IN.gvc

Torch, the models and the video I/O are imported inside the handlers, so `gvc info` and `--help` stay light.
Outputs: never one of the inputs; an existing one only with -y (ffmpeg's habit); written under a temporary
name and renamed when complete, so a failed command leaves no partial file.

The error handling of every gvc entry point (one `error:` line, exit status 2; output checks; the device check)
is in the bottom layer, gvc.cli_errors. A folder that `-o` names and that does not exist is created, and removed
again when the command fails or is interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gvc.cli_args import add_colour_arguments
from gvc.cli_errors import (
    ArgumentParser,
    check_output,
    created_folders,
    one_line,
    run_main,
    torch_device,
    work_complete,
)
from gvc.errors import GVCError

#: gvc.codec.refine.DEFAULT_LR, written out so that --help does not import torch (a test keeps them equal)
REFINE_LR_DEFAULT = 0.1
#: suffixes of what is never a JSON stats file: the inputs of `gvc encode` and its output
_NOT_JSON = (".y4m", ".yuv", ".mp4", ".mkv", ".mov", ".avi", ".webm", ".gvc", ".gvcm")


def _json_path(value: str) -> Path:
    """--json's file; a video or stream name there is the input or -o taken as --json's value."""
    path = Path(value)
    if path.suffix.lower() in _NOT_JSON:
        raise argparse.ArgumentTypeError(
            f"{value} looks like a video, not the JSON stats file --json writes (--json takes a file name: "
            f"gvc encode IN -o OUT.gvc --model M.gvcm --json stats.json)"
        )
    return path


def _no_stdout(path: Path) -> None:
    if str(path) == "-":
        raise GVCError(
            "-o -: writing to standard output is not supported; give a file (.gvc for encode; .y4m, .yuv, "
            ".mp4 or a folder for decode)"
        )


def add_parsers(subparsers) -> None:
    """Register encode, decode and info on an argparse subparsers object."""
    p = subparsers.add_parser(
        "encode",
        help="encode a video into a .gvc bitstream",
        description="Encode a video (.y4m, .yuv, .mp4/.mkv/..., or a folder of PNGs) with a .gvcm model file. "
        "Prints the real bpp (from the file size) and the likelihood estimate.",
    )
    p.add_argument(
        "input", type=Path, help="source video (raw .yuv: WxH[_fps] in the name, or --width/--height)"
    )
    p.add_argument("-o", "--output", type=Path, required=True, help="output .gvc file")
    p.add_argument("-y", "--overwrite", action="store_true", help="overwrite an existing output")
    p.add_argument("--model", type=Path, required=True, help="codec model file (.gvcm, from `gvc export`)")
    p.add_argument(
        "--gop", type=int, default=None, help="I-frame period of video models (default / <= 0: first only)"
    )
    p.add_argument("--frames", type=int, default=None, help="encode only the first N frames")
    p.add_argument("--width", type=int, default=None, help="width of a raw .yuv input")
    p.add_argument("--height", type=int, default=None, help="height of a raw .yuv input")
    p.add_argument("--fps", type=float, default=None, help="frame rate of a raw .yuv or PNG-folder input")
    add_colour_arguments(p)
    p.add_argument(
        "--device", default="cpu", help="torch device (default cpu; decode on the same kind of device)"
    )
    rate = p.add_mutually_exclusive_group()
    rate.add_argument(
        "--q",
        "--quality",
        dest="quality",
        type=float,
        default=None,
        metavar="Q",
        help="quality level of a variable-rate model (0 = its lowest rate .. its levels - 1; fractions "
        "interpolate): every frame is coded at Q",
    )
    rate.add_argument(
        "--bpp",
        type=float,
        default=None,
        metavar="B",
        help="variable-rate models: reach a file of B bits per pixel on this video (the quality level is searched "
        "with the coder itself on a sample of frames, then checked against the file)",
    )
    p.add_argument(
        "--bpp-tolerance",
        type=float,
        default=0.03,
        metavar="T",
        help="relative tolerance of --bpp (default 0.03: the file within 3%% of B)",
    )
    p.add_argument("--no-estimate", action="store_true", help="skip the likelihood estimate (faster)")
    p.add_argument(
        "--device-entropy",
        action="store_true",
        help="compute entropy parameters on --device instead of portably on the CPU (faster on a GPU; the file "
        "then decodes correctly only on the same kind of device and thread count)",
    )
    p.add_argument(
        "--refine-steps",
        type=int,
        default=0,
        metavar="N",
        help="encode-time latent refinement: N gradient steps per frame on the latents against the training "
        "objective's rate + distortion (GAN off; lambda_R and weights from the model file); the decoder and "
        "the format are unchanged (default 0: off)",
    )
    p.add_argument(
        "--refine-lr",
        type=float,
        default=None,
        help=f"Adam step size of the refinement, in latent units (default {REFINE_LR_DEFAULT:g})",
    )
    p.add_argument(
        "--refine-rate",
        choices=("objective", "hold"),
        default="objective",
        help="objective: the model's lambda_R decides how many bits refinement spends (default); hold: no frame "
        "costs more bits than without refinement (lambda_R adapted per frame): a quality gain at the same rate",
    )
    p.add_argument(
        "--refine-no-perceptual",
        action="store_true",
        help="refine against rate + MSE only (leave out the perceptual term the model was trained with)",
    )
    p.add_argument(
        "--json",
        type=_json_path,
        default=None,
        metavar="STATS.json",
        help="also write the per-frame stats as JSON to this file",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_encode)

    p = subparsers.add_parser(
        "decode",
        help="decode a .gvc bitstream to a video file or PNG folder",
        description="Decode a .gvc file. The output kind follows the name: .y4m, .yuv (raw I420), .mp4/.mkv/... "
        "(lossless x264 through ffmpeg), or a path without suffix / an existing folder (PNG frames). Output is "
        "written in the source's colour convention recorded in the file.",
    )
    p.add_argument("input", type=Path, help=".gvc file")
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        help="output video or folder (a .yuv name gets _WxH_fps added unless it carries them)",
    )
    p.add_argument("-y", "--overwrite", action="store_true", help="overwrite an existing output")
    p.add_argument("--model", type=Path, required=True, help="the model file the stream was encoded with")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument(
        "--partial",
        action="store_true",
        help="a truncated or damaged stream: write the intact frames before the first bad one (status 0, "
        "with a note) instead of nothing",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_decode)

    p = subparsers.add_parser(
        "info",
        help="show the header and per-frame sizes of a .gvc bitstream (no model needed)",
        description="Print the stream header and a table of frame type, bytes, bits and bpp per frame.",
    )
    p.add_argument("input", type=Path, help=".gvc file")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_info)


def _load_model(path: Path, device: str):
    from gvc.codec.modelfile import load_model_file

    dev = torch_device(device)
    return load_model_file(path, device=dev)


def cmd_encode(args: argparse.Namespace) -> int:
    import math

    from gvc.codec.coder import encode_video
    from gvc.data.io import open_video

    if args.frames is not None and args.frames <= 0:
        raise GVCError(f"--frames must be positive, got {args.frames}")
    if args.fps is not None and not (math.isfinite(args.fps) and args.fps > 0):
        raise GVCError(f"--fps must be a positive number of frames per second, got {args.fps:g}")
    for flag in ("width", "height"):
        value = getattr(args, flag)
        if value is not None and value <= 0:
            raise GVCError(f"--{flag} must be positive, got {value}")
    if args.refine_steps < 0:
        raise GVCError(f"--refine-steps must be >= 0, got {args.refine_steps}")
    if not 0 < args.bpp_tolerance < 1:
        raise GVCError(f"--bpp-tolerance must be in (0, 1), got {args.bpp_tolerance:g}")
    _no_stdout(args.output)
    inputs = {"input video": args.input, "model file": args.model}
    model = _load_model(args.model, args.device)
    refiner = _refiner(args, model)
    with open_video(
        args.input, args.width, args.height, args.fps, matrix=args.matrix, full_range=args.full_range
    ) as reader:
        check_output(args.output, inputs, args.overwrite)
        if reader.conversion:  # said once (README: what is converted and what is refused)
            print(f"note: {args.input}: {reader.conversion}", file=sys.stderr)
        if args.json is not None:
            check_output(args.json, {**inputs, "output": args.output}, overwrite=True)
        with created_folders(args.output, args.json):
            search = None
            options = {
                "gop": args.gop,
                "frames": args.frames,
                "estimate": not args.no_estimate,
                "progress": not args.quiet,
                "portable_entropy": not args.device_entropy,
            }
            if args.bpp is not None:
                from gvc.codec.target_rate import encode_at_bpp

                if refiner is not None:
                    raise GVCError("--bpp cannot be combined with --refine-steps")
                search = encode_at_bpp(
                    reader,
                    model,
                    args.output,
                    args.bpp,
                    tolerance=args.bpp_tolerance,
                    targets=_trained_targets(model),
                    **options,
                )
                stats = search.stats
            else:
                stats = encode_video(
                    reader, model, args.output, refiner=refiner, quality=args.quality, **options
                )
            if args.json is not None:
                args.json.parent.mkdir(parents=True, exist_ok=True)
                record = stats.to_dict()
                if search is not None:
                    record["rate_search"] = search.to_dict()
                args.json.write_text(json.dumps(record, indent=1))
    work_complete()
    n_i = sum(f.frame_type == "I" for f in stats.frames)
    print(
        f"{args.output}: {stats.num_frames} frames ({n_i} I, {stats.num_frames - n_i} P), "
        f"{stats.width}x{stats.height} (coded {stats.padded_width}x{stats.padded_height}), "
        f"{stats.file_bytes} bytes"
    )
    print(
        f"bpp {stats.bpp:.5f} (file size), {stats.file_bytes * 8 * stats.fps / max(1, stats.num_frames) / 1000:.1f} "
        f"kbit/s at {stats.fps:g} fps"
    )
    est = stats.estimated_bits
    if est is not None:
        file_bits = 8 * stats.file_bytes
        print(
            f"estimate {est:.0f} bits ({stats.estimated_bpp:.5f} bpp) vs file {file_bits} bits: "
            f"{100 * (file_bits - est) / max(est, 1):+.2f}% (container {stats.container_bytes} bytes)"
        )
    if stats.quality is not None:
        print(f"quality level q {stats.quality:g}")
    if search is not None:
        print(
            f"--bpp {search.target_bpp:g}: file {search.file_bpp:.5f} bpp ({100 * search.relative_error:+.2f}%) "
            f"after {len(search.probes)} probes and {len(search.encodes)} encode(s), {search.seconds:.2f} s in all"
        )
        if not search.on_target:
            print(
                f"warning: the file misses --bpp {search.target_bpp:g} by more than {100 * search.tolerance:g}% "
                f"(the closest of {len(search.encodes)} encodes is kept)",
                file=sys.stderr,
            )
    if refiner is not None:
        _print_refinement(stats, refiner)
    print(f"{stats.seconds:.2f} s, {stats.num_frames / max(stats.seconds, 1e-9):.2f} frames/s")
    return 0


def _trained_targets(model) -> list[float] | None:
    """The per-level target bpp of a variable-rate model's training record (None when it has none)."""
    record = getattr(model, "gvc_training", None) or {}
    targets = (record.get("objective") or {}).get("targets")
    return [float(t) for t in targets] if targets else None


def _refiner(args: argparse.Namespace, model):
    """The LatentRefiner of --refine-steps (None when 0), targets from the model file's training record."""
    if args.refine_steps == 0:
        return None
    from gvc.codec.coder import is_video_model
    from gvc.codec.refine import DEFAULT_LR, LatentRefiner, targets_from_record

    record = getattr(model, "gvc_training", None) or {}
    targets = targets_from_record(record, is_video_model(model), perceptual=not args.refine_no_perceptual)
    if "I" not in targets:
        print(
            "note: the model file has no I-frame training record: I-frames are coded unrefined",
            file=sys.stderr,
        )
    lr = DEFAULT_LR if args.refine_lr is None else args.refine_lr
    return LatentRefiner(args.refine_steps, targets, lr=lr, rate=args.refine_rate)


def _print_refinement(stats, refiner) -> None:
    """Per-frame bits and PSNR before -> after refinement, and the totals."""
    rows = [f for f in stats.frames if f.refine is not None]
    if not rows:
        print("refinement: no frame was refined")
        return
    pixels = stats.width * stats.height
    print(
        f"refinement ({refiner.steps} steps, lr {refiner.lr:g}, rate {refiner.rate}): frame type bits "
        "before -> after, PSNR dB"
    )
    for f in rows:
        b, a = f.refine["before"], f.refine["after"]
        print(
            f"  {f.index:5d} {f.frame_type} {b['bits']:10.0f} -> {a['bits']:10.0f}  "
            f"{b['psnr']:6.2f} -> {a['psnr']:6.2f}  (step {f.refine['best_step']})"
        )
    bb = sum(f.refine["before"]["bits"] for f in rows)
    ba = sum(f.refine["after"]["bits"] for f in rows)
    pb = sum(f.refine["before"]["psnr"] for f in rows) / len(rows)
    pa = sum(f.refine["after"]["psnr"] for f in rows) / len(rows)
    print(
        f"refinement total: {bb / (len(rows) * pixels):.5f} -> {ba / (len(rows) * pixels):.5f} bpp "
        f"(estimate), mean PSNR {pb:.2f} -> {pa:.2f} dB over {len(rows)} refined frames"
    )


def cmd_decode(args: argparse.Namespace) -> int:
    import time

    from gvc.codec.coder import decode_video
    from gvc.data.io import open_writer, raw_yuv_name
    from gvc.errors import BitstreamError

    _no_stdout(args.output)
    model = _load_model(args.model, args.device)
    t0 = time.perf_counter()
    video = decode_video(args.input, model, progress=not args.quiet, model_name=f"--model {args.model}")
    out = args.output
    if out.suffix.lower() == ".yuv":  # raw I420 has no header: the name carries the size (MCL-JCV naming)
        out = raw_yuv_name(out, video.width, video.height, video.fps)
    check_output(out, {"input stream": args.input, "model file": args.model}, args.overwrite, folder_ok=True)
    n = 0
    # the writer writes to a temporary name and renames when done; an error deletes it (nothing partial stays)
    with (
        created_folders(out),
        open_writer(
            out,
            fps=video.fps,
            matrix=video.matrix,
            full_range=video.full_range,
            sample_aspect=video.header.sample_aspect,  # a .y4m keeps the source's pixel aspect ratio
            chroma_tag=video.header.chroma_tag or "420jpeg",  # and its chroma tag (C420mpeg2, ...)
        ) as writer,
    ):
        try:
            for frame in video:
                writer.write(frame)
                n += 1
        except BitstreamError as e:
            if n == 0:
                raise
            if not args.partial:
                raise BitstreamError(
                    f"{e} (frames 0-{n - 1} are intact: add --partial to write those {n} frames)"
                ) from None
            print(f"note: {one_line(e)}; wrote the {n} intact frames before it (--partial)", file=sys.stderr)
    work_complete()
    dt = time.perf_counter() - t0
    size = args.input.stat().st_size
    bpp = 8 * size / max(1, n * video.width * video.height)
    rng = "full" if video.full_range else "limited"
    print(
        f"{out}: {n} frames {video.width}x{video.height} at {video.fps:g} fps ({video.matrix}, {rng} range); "
        f"stream {size} bytes, bpp {bpp:.5f}; {dt:.2f} s, {n / max(dt, 1e-9):.2f} frames/s"
    )
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from gvc.codec.bitstream import open_bitstream

    rows = []
    with open_bitstream(args.input) as r:
        h = r.header
        for p in r:
            rows.append((p.index, p.frame_type, p.nbytes, p.payload_bytes, p.shift, p.quality))
        r.check_complete()
    work_complete()  # the stream is read: a reader that stops early (`| head`) is not an error
    pixels = h.width * h.height
    header_bytes = len(h.to_bytes())  # HEADER_BYTES, + 4 with a pixel aspect ratio, + 1 with a chroma tag
    size = args.input.stat().st_size
    n = len(rows)
    bpp = 8 * size / max(1, n * pixels)
    if args.json:
        print(
            json.dumps(
                {
                    "file": str(args.input),
                    "bytes": size,
                    "header_bytes": header_bytes,
                    "sample_aspect": list(h.sample_aspect) if h.sample_aspect else None,
                    "chroma_tag": h.chroma_tag,
                    "version": h.version,
                    "model_id": h.model_id.hex(),
                    "width": h.width,
                    "height": h.height,
                    "padded_width": h.padded_width,
                    "padded_height": h.padded_height,
                    "fps": [h.fps_num, h.fps_den],
                    "matrix": h.matrix,
                    "full_range": h.full_range,
                    "gop": h.gop,
                    "portable_entropy": h.portable_entropy,
                    "frames": n,
                    "bpp": bpp,
                    "per_frame": [
                        {
                            "index": i,
                            "type": t,
                            "bytes": b,
                            "payload_bytes": pb,
                            "bits": 8 * b,
                            "bpp": 8 * b / pixels,
                            "shift": list(s),
                            "quality": q,
                        }
                        for i, t, b, pb, s, q in rows
                    ],
                },
                indent=1,
            )
        )
        return 0
    gop = "first frame only" if h.gop == 0 else ("all intra" if h.gop == 1 else str(h.gop))
    print(f"{args.input}: gvc bitstream v{h.version}, model {h.model_id.hex()[:12]}…")
    print(
        f"  {h.width}x{h.height} (coded {h.padded_width}x{h.padded_height}), {h.fps:g} fps "
        f"({h.fps_num}/{h.fps_den}), {h.matrix} {'full' if h.full_range else 'limited'} range, "
        f"I-frame period: {gop}, entropy parameters: {'portable (CPU)' if h.portable_entropy else 'device'}"
    )
    variable = any(q is not None for *_, q in rows)
    print(
        f"  {'frame':>7} {'type':>4} {'bytes':>10} {'bits':>11} {'bpp':>9}"
        + ("        q" if variable else "")
    )
    for i, t, b, _, _, q in rows:
        level = f" {q:>8.4f}" if q is not None else ""
        print(f"  {i:>7} {t:>4} {b:>10} {8 * b:>11} {8 * b / pixels:>9.5f}{level}")
    n_i = sum(t == "I" for _, t, *_ in rows)
    payload = sum(pb for _, _, _, pb, _, _ in rows)
    print(
        f"  total: {n} frames ({n_i} I, {n - n_i} P), {size} bytes ({size - payload} container incl. "
        f"{header_bytes}-byte header), bpp {bpp:.5f} (file size)"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="gvc", description="gvc codec commands")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Codec commands only (encode/decode/info); the full `gvc` command is gvc.cli:main. User errors: one
    `error:` line, exit code 2 (gvc.cli.run_main)."""
    return run_main(lambda: _run(argv), sigterm=True)


def _run(argv) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
