"""Evaluation: quality metrics, ffmpeg baselines with bitrate matching, RD curves and BD-rates, the runner."""
