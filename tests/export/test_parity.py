"""The exported file computes what PyTorch computes, whatever the chunking (real onnxruntime, real speech)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from device.engine import Engine
from export.onnx_export import op_types
from export.parity import ParityError, check_operators, check_parity
from export.scoring import stream_probs, torch_probs

TOL = 1e-4


def test_onnx_matches_torch_on_speech_in_every_chunking(tiny_det, tiny_model, speech):
    result = check_parity(tiny_det, tiny_model, [speech], tolerance=TOL)
    assert set(result.max_abs_diff) >= {"one pass", "daemon chunk", "one output frame", "random mix"}
    assert result.worst <= TOL
    # The probabilities must actually move with the speech, or agreement would prove nothing.
    probs = torch_probs(tiny_det, speech)
    assert probs.std() > 0.02 and probs.min() < 0.9 and probs.max() > 0.1


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frames=st.lists(st.integers(1, 60), min_size=1, max_size=12))
def test_any_chunking_gives_the_same_probabilities(tiny_model, speech, params, frames):
    stepper = Engine.load(tiny_model)
    sizes = [f * params.output_hop_samples for f in frames]
    whole = stream_probs(stepper, speech, 0)
    chunked = stream_probs(stepper, speech, sizes)
    np.testing.assert_allclose(chunked, whole, atol=TOL, rtol=0)


def test_torch_streaming_matches_torch_one_pass(tiny_det, speech, params):
    hop = params.output_hop_samples
    audio = torch.from_numpy(speech[: len(speech) // hop * hop].copy())[None]
    with torch.no_grad():
        whole = tiny_det(audio, *tiny_det.initial_state())[0]
        state, parts = tiny_det.initial_state(), []
        for start in range(0, audio.shape[1], params.chunk_samples):
            probs, *state = tiny_det(audio[:, start : start + params.chunk_samples], *state)
            parts.append(probs)
    np.testing.assert_allclose(torch.cat(parts, dim=1).numpy(), whole.numpy(), atol=1e-5, rtol=0)


def test_parity_check_catches_a_model_that_differs(tiny_det, tiny_model, speech, params):
    from tests.export.conftest import tiny_detector

    other = tiny_detector(params, speech, seed=1)  # same shapes, other weights
    with pytest.raises(ParityError, match="disagrees with PyTorch"):
        check_parity(other, tiny_model, [speech[: params.sample_rate * 2]], tolerance=TOL)


def test_state_is_carried_not_recomputed(tiny_model, speech, params):
    """Resetting the state between chunks changes the result: the state really carries context."""
    stepper = Engine.load(tiny_model)
    carried = stream_probs(stepper, speech, params.chunk_samples)
    reset, usable = [], len(carried) * params.output_hop_samples
    for start in range(0, usable, params.chunk_samples):
        stepper.reset()
        reset.append(stepper.step(speech[start : min(start + params.chunk_samples, usable)]))
    assert np.max(np.abs(np.concatenate(reset) - carried)) > 1e-3


def test_graph_uses_only_standard_operators(tiny_model):
    ops = op_types(onnx.load(str(tiny_model)))
    check_operators(ops)
    assert "ai.onnx:GRU" in ops and "ai.onnx:Conv" in ops
    with pytest.raises(ParityError, match="non-standard"):
        check_operators(ops + ["com.microsoft:FusedConv"])


def test_several_heads_export_as_one_streaming_model(params, speech, tmp_path):
    """[model] heads = 2: the mean of two heads, its state stacked, exported and run by the device."""
    from tests.export.conftest import tiny_detector, write_tiny_model

    det = tiny_detector(params, speech, seed=3, heads=2)
    path = write_tiny_model(det, params, tmp_path / "model.onnx", keyword="two", model_version="two-heads")
    result = check_parity(det, path, [speech], tolerance=TOL)
    assert result.worst <= TOL
    probs = torch_probs(det, speech)
    # the answer moves over the clip (in logit: two random heads can agree on "nearly sure")
    p = np.clip(probs.astype(np.float64), 1e-7, 1 - 1e-7)
    assert np.log(p / (1 - p)).std() > 0.2
    stepper = Engine.load(path)
    chunked = stream_probs(stepper, speech, [3 * params.output_hop_samples] * 200)
    np.testing.assert_allclose(chunked[: len(probs)], stream_probs(stepper, speech, 0)[: len(probs)], atol=TOL, rtol=0)
