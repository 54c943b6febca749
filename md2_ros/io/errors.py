"""The one error type of the io adapters: data from outside that cannot be used, the text says why."""
from __future__ import annotations


class FormatError(ValueError):
    """Outside data (an image, a CameraInfo, a calibration, a message) that cannot be used; the text names
    the source and the cause. The node catches this one type (``ros.conversions.ConversionError`` is it)."""
