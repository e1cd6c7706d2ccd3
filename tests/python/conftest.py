"""Test defaults: the plugin built by cargo, and ONNX Runtime from the venv's wheel."""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _defaults():
    if "GST_PLUGIN_PATH" not in os.environ:
        os.environ["GST_PLUGIN_PATH"] = str(REPO / "target" / "debug")
    if "ORT_DYLIB_PATH" not in os.environ:
        try:
            import onnxruntime

            capi = Path(onnxruntime.__file__).parent / "capi"
            libs = sorted(capi.glob("libonnxruntime.so.*"))
            if libs:
                os.environ["ORT_DYLIB_PATH"] = str(libs[0])
        except ImportError:
            pass


_defaults()
