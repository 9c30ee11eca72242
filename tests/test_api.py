"""The Python API: Detector.load(...)(image | path | list) on checkpoints and ONNX exports."""
import numpy as np
import pytest

from sdet import DetectionResult, Detector
from sdet.checkpoint import load_detector
from sdet.config import load_config
from sdet.data.formats import load_samples
from sdet.data.images import read_image
from sdet.deploy.predictor import Predictor
from sdet.engine.trainer import Trainer
from sdet.errors import UserError

from conftest import tiny_overrides

# float32 forward passes of one tiny network: batching or another runtime changes only the order
# of sums, ~1e-6 relative on a probability in [0, 1]; 1e-4 leaves margin for any CPU's kernels
PROB_ATOL = 1e-4


@pytest.fixture(scope="module")
def checkpoint(synth_root, tmp_path_factory):
    run = tmp_path_factory.mktemp("api_run")
    Trainer(load_config(None, tiny_overrides(synth_root, run, steps=2)), progress=False).run()
    return run / "best.pt"


@pytest.fixture(scope="module")
def image_paths(synth_root):
    return [s.image_path for s in load_samples("folder", synth_root, "test")]


def test_one_array_matches_the_predictor(checkpoint, image_paths):
    det = Detector.load(checkpoint, ["post.thresh=0.0", "post.box_thresh=0.0"])
    image = read_image(image_paths[0])
    result = det(image)
    assert isinstance(result, DetectionResult) and result.frame == "array" and result.source is None
    assert (result.height, result.width) == image.shape[:2]
    detector, cfg, _ = load_detector(checkpoint)
    cfg.post.thresh, cfg.post.box_thresh = 0.0, 0.0
    want = Predictor(detector, cfg)(image)
    np.testing.assert_allclose(result.text_map, want.text_map, atol=PROB_ATOL)
    assert len(result.boxes) == len(want.detections) > 0
    assert result.scores == pytest.approx([d.score for d in want.detections], abs=PROB_ATOL)


def test_a_list_of_paths_runs_in_batches_and_keeps_order(checkpoint, image_paths, capsys):
    det = Detector.load(checkpoint, ["data.input.test_resize=fixed"], batch_size=3)
    calls = []
    batch = det.runtime.batch
    det.runtime.batch = lambda tensor, *a, **k: calls.append(len(tensor)) or batch(tensor, *a, **k)
    paths = image_paths * 2
    results = det([str(p) for p in paths], with_entropy=True, progress=True)
    assert calls == [3, 3, 2]  # 8 images of one input size, batch_size 3
    assert "predict" in capsys.readouterr().err  # the progress bar
    for path, result in zip(paths, results):
        assert result.source == str(path) and result.frame == "raw"  # synthetic PNGs carry no EXIF tag
        alone = det(read_image(path))
        np.testing.assert_allclose(result.text_map, alone.text_map, atol=PROB_ATOL)
        assert all(b.entropy is not None and 0.0 <= b.entropy <= 1.0 for b in result.boxes)


def test_onnx_and_checkpoint_give_the_same_maps(checkpoint, image_paths, tmp_path):
    pytest.importorskip("onnxruntime")
    from sdet.deploy.onnx_export import export_onnx

    export_onnx(str(checkpoint), str(tmp_path / "m.onnx"))
    image = read_image(image_paths[1])
    torch_result, onnx_result = Detector.load(checkpoint)(image), Detector.load(tmp_path / "m.onnx")(image)
    np.testing.assert_allclose(onnx_result.text_map, torch_result.text_map, atol=PROB_ATOL)


def test_bad_inputs_are_user_errors(checkpoint, tmp_path):
    with pytest.raises(UserError, match="not found"):
        Detector.load(tmp_path / "missing.pt")
    det = Detector.load(checkpoint)
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(UserError, match="bad.jpg"):
        det(str(tmp_path / "bad.jpg"))
    with pytest.raises(UserError, match="HxWx3 uint8"):
        det(np.zeros((8, 8), np.float32))
    with pytest.raises(UserError, match="cannot detect text in a int"):
        det([3])
    with pytest.raises(UserError, match="batch_size"):
        Detector.load(checkpoint, batch_size=0)


def test_a_photo_path_is_read_upright_and_says_so(checkpoint, tmp_path):
    from test_images_exif import write_exif_jpeg

    raw = np.full((40, 80, 3), 128, np.uint8)  # 80 wide, 40 high in the file's grid
    path = write_exif_jpeg(tmp_path / "photo.jpg", raw, orientation=6)  # "rotate 90 CW to view"
    result = Detector.load(checkpoint)(str(path))
    assert result.frame == "exif-rotated" and (result.height, result.width) == (80, 40)
