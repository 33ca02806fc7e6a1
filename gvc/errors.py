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


def required(node, key: str, where: str = ""):
    """node[key] of a config mapping (dict or DictConfig); a ConfigError naming the dotted key when it is missing.

    where: the dotted path of `node` ("stage", "stage.flow_loss", "loss", "" for the root of conf/train.yaml).
    conf/ is the only place a default lives: a missing key is a mistake (an old or hand-made config), not a
    reason to guess a value.
    """
    if node is None or key not in node:
        name = f"{where}.{key}" if where else key
        source = f"conf/{where.split('.')[0]}/*.yaml" if where else "conf/train.yaml"
        raise ConfigError(f"{name} is missing: {source} sets it")
    return node[key]
