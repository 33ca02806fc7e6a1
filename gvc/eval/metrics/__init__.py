"""Quality metrics of decoded video against its source, by family, and a registry that never invents numbers.

Every metric compares a decoded frame with the source frame it replaces. A frame is given in both forms
(:class:`Frame`): the 8-bit YUV 4:2:0 planes (what the codecs output and what VMAF / YUV-PSNR read) and the
RGB tensor ``(1, 3, H, W)`` in [0, 1] obtained from those planes with the run's colour convention (what
PSNR-RGB, MS-SSIM, LPIPS, ST-LPIPS, PIM and FID/KID read). Both the source and every codec's output go
through the same 4:2:0 -> RGB conversion, so no codec gains from skipping chroma subsampling.

Families (modules) and their metrics (``higher`` = higher is better):

============  ============  ==========================================  ======  ================================
module        name          columns                                     better  notes
============  ============  ==========================================  ======  ================================
fidelity      psnr          psnr_rgb, psnr_y, psnr_u, psnr_v, psnr_yuv  higher  dB, mean of per-frame values;
                                                                                psnr_yuv = (6 Y + U + V) / 8
fidelity      plane_mean    mean_err_y, mean_err_u, mean_err_v          0 best  decoded - source plane mean, 8-bit
                                                                                levels (signed colour shift)
fidelity      ms_ssim       ms_ssim                                     higher  RGB [0, 1]; fewer scales if small
detail        detail        hf_ratio, sharpness, sharpness_source       1 / src Y high-frequency energy over the
                                                                                source's; Laplacian variance
perceptual    lpips         lpips                                       lower   AlexNet LPIPS v0.1, user weights
perceptual    st_lpips      st_lpips                                    lower   ST-LPIPS AlexNet (not LPIPS)
perceptual    st_lpips_vgg  st_lpips_vgg                                lower   ST-LPIPS VGG (not LPIPS)
perceptual    pim           pim                                         lower   PyTorch port, converted weights
vmaf          vmaf          vmaf                                        higher  libvmaf v0.6.1 in ffmpeg, luma
distribution  fid, kid      fid, kid                                    lower   HiFiC 256x256 patches, per point
temporal      warp_error    warp_error                                  lower   under the source's DIS flow, minus
                                                                                the source's own; 0 = as source
temporal      tlp           tlp                                         lower   tLP with ST-LPIPS as distance
============  ============  ==========================================  ======  ================================

Temporal metrics read consecutive frames (:mod:`gvc.eval.metrics.temporal`): frame 0 has no value (NaN) and
their clip value is the mean over frames 1..N-1.

A metric whose weights or tools are missing is built as :class:`UnavailableMetric`: it reports
``{"unavailable": reason}`` (naming the file it needs) and the run goes on.
"""

from gvc.eval.metrics.base import (
    COLUMN_LABELS,
    HIGHER_IS_BETTER,
    MEAN_ERROR_COLUMNS,
    PSNR_YUV_WEIGHTING,
    Frame,
    Metric,
    UnavailableMetric,
    default_weights_dir,
    resolve_weights,
)
from gvc.eval.metrics.detail import DetailMetric, hf_energy, laplacian_variance
from gvc.eval.metrics.distribution import InceptionPatchFeatures, fid_kid, patches_256
from gvc.eval.metrics.fidelity import (
    MS_SSIM_BETAS,
    MSSSIMMetric,
    PlaneMeanMetric,
    PSNRMetric,
    ms_ssim,
    ms_ssim_scales,
    plane_mean_error,
    psnr,
    psnr_planes,
)
from gvc.eval.metrics.perceptual import LPIPSMetric, PIMMetric, STLPIPSMetric, STLPIPSVGGMetric
from gvc.eval.metrics.suite import (
    ALL_METRICS,
    FRAME_METRICS,
    SET_METRICS,
    MetricSuite,
    VideoScores,
    metric_columns,
)
from gvc.eval.metrics.temporal import SourceFlow, TLPMetric, WarpErrorMetric, warp_l1
from gvc.eval.metrics.vmaf import VMAFMetric, vmaf_yuv_files, write_yuv_frame
from gvc.eval.tools import ffmpeg_exe, ffmpeg_has

__all__ = [
    "ALL_METRICS",
    "COLUMN_LABELS",
    "DetailMetric",
    "FRAME_METRICS",
    "HIGHER_IS_BETTER",
    "MEAN_ERROR_COLUMNS",
    "MS_SSIM_BETAS",
    "PSNR_YUV_WEIGHTING",
    "SET_METRICS",
    "Frame",
    "InceptionPatchFeatures",
    "LPIPSMetric",
    "MSSSIMMetric",
    "Metric",
    "MetricSuite",
    "PIMMetric",
    "PSNRMetric",
    "PlaneMeanMetric",
    "STLPIPSMetric",
    "STLPIPSVGGMetric",
    "SourceFlow",
    "TLPMetric",
    "UnavailableMetric",
    "VMAFMetric",
    "VideoScores",
    "WarpErrorMetric",
    "default_weights_dir",
    "ffmpeg_exe",
    "ffmpeg_has",
    "fid_kid",
    "hf_energy",
    "laplacian_variance",
    "metric_columns",
    "ms_ssim",
    "ms_ssim_scales",
    "patches_256",
    "plane_mean_error",
    "psnr",
    "psnr_planes",
    "resolve_weights",
    "vmaf_yuv_files",
    "warp_l1",
    "write_yuv_frame",
]
