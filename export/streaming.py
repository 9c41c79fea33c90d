"""The exported step function: raw audio chunk + carried state -> probabilities + new state.

Front end (:class:`train.frontend.LogMel`) and network (:class:`train.model.CRNN`) in one
module, so the ONNX graph takes raw 16 kHz audio and the device never computes features
itself. Input/output names follow :mod:`device.modelmeta`.
"""
from __future__ import annotations

import torch
from torch import nn

from device import modelmeta
from device.params import AudioParams
from train.frontend import LogMel
from train.model import CRNN

STATE_NAMES = ("audio", "conv", "h1", "h2")
"""Order of the carried state tensors (``state_<name>`` inputs, ``next_<name>`` outputs)."""


class StreamingDetector(nn.Module):
    def __init__(self, model: CRNN, params: AudioParams):
        super().__init__()
        if model.cfg.stride != params.output_stride or model.cfg.n_mels != params.n_mels:
            raise ValueError("model config does not match the audio parameters "
                             f"(stride {model.cfg.stride} vs {params.output_stride}, "
                             f"n_mels {model.cfg.n_mels} vs {params.n_mels})")
        self.frontend = LogMel(params)
        self.model = model

    def initial_state(self) -> tuple[torch.Tensor, ...]:
        return (self.frontend.initial_state(1), *self.model.initial_state(1))

    def forward(self, audio, state_audio, state_conv, state_h1, state_h2):
        feats, next_audio = self.frontend.step(audio, state_audio)
        logits, (next_conv, next_h1, next_h2) = self.model.step(feats, (state_conv, state_h1, state_h2))
        return torch.sigmoid(logits), next_audio, next_conv, next_h1, next_h2

    @staticmethod
    def input_names() -> list[str]:
        return [modelmeta.INPUT_AUDIO] + [modelmeta.STATE_IN_PREFIX + n for n in STATE_NAMES]

    @staticmethod
    def output_names() -> list[str]:
        return [modelmeta.OUTPUT_PROBS] + [modelmeta.STATE_OUT_PREFIX + n for n in STATE_NAMES]
