"""Exception types of gvc. Every error a user can cause raises one of these, with a message that says what to do."""


class GVCError(Exception):
    """Base class of every gvc error."""


class VideoFormatError(GVCError):
    """A video file is missing, unreadable, or not what its name/header/size says."""


class BitstreamError(GVCError):
    """A .gvc file is truncated, corrupted, of another version, or made by another model."""


class ModelFileError(GVCError):
    """A .gvcm codec model file is missing, corrupted or incompatible."""


class MissingWeightsError(GVCError):
    """Pretrained weights (LPIPS AlexNet, RAFT, Inception, PIM) are not on disk; the message names the file."""


class ConfigError(GVCError):
    """A configuration contradicts itself or names something that does not exist."""


class CheckpointError(GVCError):
    """A training checkpoint is missing or does not match the model being trained."""


class TrainingError(GVCError):
    """Training cannot continue (e.g. too many non-finite steps in a row)."""
