"""Evaluation of gvc against standard codecs on real footage.

- :mod:`gvc.eval.codecs`: the ``Codec`` protocol and its implementations: gvc (through gvc.codec's public coder
  API), ffmpeg encoders (x265 medium / veryslow, VVenC, SVT-AV1, libaom; low delay, the run's GOP) and external
  commands (e.g. HM).
- :mod:`gvc.eval.ratematch`: bisection of a tunable codec's quality value to a target bpp (with the reason when a
  target cannot be met).
- :mod:`gvc.eval.metrics`: metrics by family (fidelity, perceptual, vmaf, distribution, temporal) and the suite that marks
  a metric "unavailable" (naming the file it needs) instead of inventing a number.
- :mod:`gvc.eval.source`, :mod:`gvc.eval.store`, :mod:`gvc.eval.report`, :mod:`gvc.eval.rd`: source clips, the
  resumable results store, tables / plots / report.md, BD-rate; :mod:`gvc.eval.pictures`: per-clip plots of
  quality and temporal metrics per frame and side-by-side crops.
- :mod:`gvc.eval.run`: the thin runner behind ``evaluate.py``; :mod:`gvc.eval.export`, :mod:`gvc.eval.pim`.
"""
