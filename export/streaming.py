"""The exported step function: raw audio chunk + carried state -> probabilities + new state.

The frozen speech front end (:class:`train.frontend.SpeechEmbedding`) and the trained head
(:class:`train.model.Head`) in one module, so the ONNX graph takes raw 16 kHz audio and the
device never computes features itself. Every time convolution of the front end and the
head's GRUs carry their context as state, so a chunk costs what its share of a
whole-sequence pass costs, at any chunk size. Input/output names follow :mod:`device.modelmeta`.
"""

from __future__ import annotations

import torch
from torch import nn

from device import modelmeta
from device.params import AudioParams
from train.frontend import SpeechEmbedding, shared
from train.model import Head, Heads


class StreamingDetector(nn.Module):
    def __init__(self, head: Head | Heads, params: AudioParams, frontend: SpeechEmbedding | None = None):
        super().__init__()
        self.frontend = frontend if frontend is not None else shared(params)
        if head.cfg.embed_dim != self.frontend.embed_dim:
            raise ValueError(
                f"the head takes {head.cfg.embed_dim} numbers per frame, the front end gives {self.frontend.embed_dim}"
            )
        self.params = params
        self.head = head
        self.state_names = [*self.frontend.state_names, "gru"]

    def initial_state(self) -> list[torch.Tensor]:
        return [*self.frontend.initial_state(1), self.head.initial_state(1)]

    def forward(self, audio: torch.Tensor, *state: torch.Tensor):
        emb, next_fe = self.frontend.step(audio, list(state[:-1]))
        logits, next_h = self.head.step(emb, state[-1])
        return (torch.sigmoid(logits), *next_fe, next_h)

    def input_names(self) -> list[str]:
        return [modelmeta.INPUT_AUDIO] + [modelmeta.STATE_IN_PREFIX + n for n in self.state_names]

    def output_names(self) -> list[str]:
        return [modelmeta.OUTPUT_PROBS] + [modelmeta.STATE_OUT_PREFIX + n for n in self.state_names]
