"""The models that ship with distinfer: one table, read without loading OpenVINO.

The PP-OCR ONNX files come inside the ``rapidocr`` wheel; ``distinfer.models.ppocr``
holds their tasks, under the same names.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

#: Bundled model names, and what each one does.
BUNDLED_MODELS: Mapping[str, str] = MappingProxyType(
    {
        "ppocr": "PP-OCRv6: text detection, orientation classification and recognition",
        "ppocr-det": "PP-OCRv6 text detection only (text boxes and polygons)",
        "ppocr-cls": "PP-OCR text-line orientation classifier (0 or 180 degrees)",
    }
)
