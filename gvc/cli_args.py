"""Argparse options shared by the `gvc` commands (no heavy imports: `gvc info` must stay light)."""

from __future__ import annotations


def add_colour_arguments(parser) -> None:
    """--matrix and --limited-range/--full-range on an argparse parser (dest matrix, full_range; None = what
    the file states, else the default: BT.709, full range for raw .yuv)."""
    parser.add_argument(
        "--matrix",
        choices=["bt709", "bt601"],
        default=None,
        help="YUV<->RGB matrix of the source (default: what the file states, else bt709)",
    )
    rng = parser.add_mutually_exclusive_group()
    rng.add_argument(
        "--limited-range",
        dest="full_range",
        action="store_const",
        const=False,
        default=None,
        help="the source is limited range (default: what the file states; raw .yuv: full range)",
    )
    rng.add_argument(
        "--full-range", dest="full_range", action="store_const", const=True, help="the source is full range"
    )
