"""The test detector (tools/make_detector_model.py, tests/models/detector_ssd.*): its boxes, decoded
as GStreamer's SSD decoders decode them, are the coloured squares to the pixel, and the committed
files are what the generator writes now. Runs with the .venv's ONNX Runtime; the chain through
GStreamer itself is tests/python/test_detector_chain.py (in the lanes)."""

import importlib.util
import sys
from pathlib import Path

import pytest

np = pytest.importorskip("numpy")
ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "tests" / "models"


def generator():
    sys.path.insert(0, str(REPO / "tools"))
    spec = importlib.util.spec_from_file_location("make_detector_model",
                                                  REPO / "tools" / "make_detector_model.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def decode(boxes, scores, width=320, height=240, threshold=0.3):
    """GStreamer's ssdobjectdetector / ssdtensordec arithmetic (float32, truncated to int):
    [(x, y, w, h, score)] of the detections at or above the score threshold."""
    f = np.float32
    out = []
    for (ymin, xmin, ymax, xmax), score in zip(boxes[0], scores[0]):
        if score < f(threshold):
            continue
        x, y = int(f(xmin * f(width))), int(f(ymin * f(height)))
        w, h = int(f(xmax * f(width)) - f(x)), int(f(ymax * f(height)) - f(y))
        out.append((x, y, w, h, float(score)))
    return out


def test_boxes_are_the_squares_to_the_pixel():
    session = ort.InferenceSession(str(MODELS / "detector_ssd.onnx"))
    assert [(i.name, i.shape, i.type) for i in session.get_inputs()] == \
        [("image", [1, 240, 320, 3], "tensor(uint8)")]
    assert [(o.name, o.shape) for o in session.get_outputs()] == [
        ("detection_boxes", [1, "detections", 4]), ("detection_classes", [1, "detections"]),
        ("detection_scores", [1, "detections"]), ("num_detections", [1])]
    rng = np.random.default_rng(7)
    for trial in range(200):
        frame = np.full((240, 320, 3), rng.integers(0, 128), np.uint8)
        for c in range(3):
            if trial % 5 == c:  # now and then a colour is absent
                continue
            x0, y0 = int(rng.integers(0, 320)), int(rng.integers(0, 240))
            x1, y1 = int(rng.integers(x0 + 1, 321)), int(rng.integers(y0 + 1, 241))
            colour = rng.integers(0, 128, 3)
            colour[c] = rng.integers(128, 256)
            frame[y0:y1, x0:x1] = colour
        # Squares drawn later may cover earlier ones: each colour's box is around what is left.
        want = []
        for c, score in enumerate((0.9, 0.8, 0.7)):
            high = frame >= 128
            ys, xs = np.nonzero(high[..., c] & ~high[..., (c + 1) % 3] & ~high[..., (c + 2) % 3])
            if len(xs):
                want.append((xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min(),
                             score))
        boxes, classes, scores, count = session.run(None, {"image": frame[None]})
        got = decode(boxes, scores)
        assert [g[:4] for g in got] == [w[:4] for w in want], f"trial {trial}"
        assert [g[4] for g in got] == pytest.approx([w[4] for w in want])
        assert classes.tolist() == [[1.0, 1.0, 1.0]] and count.tolist() == [3.0]


def test_nothing_coloured_is_no_detection():
    session = ort.InferenceSession(str(MODELS / "detector_ssd.onnx"))
    frame = np.zeros((1, 240, 320, 3), np.uint8)
    frame[0, 10:20, 10:20] = (255, 255, 255)  # white: every channel high
    frame[0, 30:40, 30:40] = (255, 200, 0)  # yellow: two channels high
    boxes, _, scores, _ = session.run(None, {"image": frame})
    assert scores.tolist() == [[0.0, 0.0, 0.0]] and not boxes.any()


def test_committed_files_are_what_the_generator_writes(tmp_path):
    gen = generator()
    gen_model = gen.detector()
    committed = onnx.load(str(MODELS / "detector_ssd.onnx"))
    assert gen_model.graph == committed.graph, "run tools/make_detector_model.py"
    assert {p.key: p.value for p in committed.metadata_props} == {
        "detection_boxes": "Gst.Model.ObjectDetector.Boxes",
        "detection_classes": "Gst.Model.ObjectDetector.Classes",
        "detection_scores": "Gst.Model.ObjectDetector.Scores",
        "num_detections": "Gst.Model.ObjectDetector.NumDetections",
        "model.name": "detector_ssd",
        "model.description": gen_model.metadata_props[-1].value,
    }
    assert (MODELS / "detector_ssd.modelinfo").read_text() == gen.modelinfo()
    assert (MODELS / "detector_ssd_labels.txt").read_text() == "person\nperson\n"
