"""models/segmentors: encode-once / decode-per-click segmentors."""
from .click_segmentor import ClickSegmentor
from .click_segmentor_zoom_in import ClickSegmentorZoomIn

__all__ = ['ClickSegmentor', 'ClickSegmentorZoomIn']
