"""The data layer: one reader per data set layout, caption forms, preprocessing and validation.

Readers (:class:`DatasetReader`, registered in :data:`DATASETS`: ``fashioniq``, ``cirr``) return plain
records (:class:`Triplet`, lists of image names); :func:`open_dataset` opens a folder as the layout it
holds. Nothing here touches tensors except the image transforms.
"""

from cirlab.data.captions import CAPTION_FORMS, EVAL_FORM_INDEX, caption_variants, eval_caption, training_caption
from cirlab.data.check import CheckReport, check_dataset
from cirlab.data.cirr import CIRR
from cirlab.data.dataset import (
    DATASETS,
    DEFAULT_DATASET,
    SINGLE_CATEGORY,
    DatasetReader,
    dataset_class,
    detect_dataset,
    open_dataset,
)
from cirlab.data.fashioniq import FashionIQ
from cirlab.data.images import DEFAULT_MAX_PIXELS, load_image, scan_images
from cirlab.data.layout import CATEGORIES, IMAGE_EXTENSIONS, SPLITS
from cirlab.data.missing import MissingPolicy, MissingReport
from cirlab.data.protocol import ProtocolInputs, validation_inputs
from cirlab.data.records import SplitData, Triplet
from cirlab.data.transforms import PREPROCESS_KINDS, TargetPad, build_preprocess

__all__ = [
    "CAPTION_FORMS", "CATEGORIES", "CIRR", "DATASETS", "DEFAULT_DATASET", "DEFAULT_MAX_PIXELS", "EVAL_FORM_INDEX",
    "IMAGE_EXTENSIONS", "PREPROCESS_KINDS", "SINGLE_CATEGORY", "SPLITS", "CheckReport", "DatasetReader", "FashionIQ",
    "MissingPolicy", "MissingReport", "ProtocolInputs", "SplitData", "TargetPad", "Triplet", "build_preprocess",
    "caption_variants", "check_dataset", "dataset_class", "detect_dataset", "eval_caption", "load_image",
    "open_dataset", "scan_images", "training_caption", "validation_inputs",
]
