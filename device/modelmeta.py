"""What a ``model.onnx`` file promises: its input/output names and its metadata keys.

This module is the contract between ``export/`` (which writes model files) and the
device (which runs them). It has no dependencies beyond the standard library.

Graph contract (a streaming step function):

- input ``audio``: float32 ``[1, n]``, mono audio in [-1, 1] at the model's sample rate,
  ``n`` a positive multiple of ``AudioParams.output_hop_samples``;
- for every input ``state_<name>`` there is an output ``next_<name>`` of the same static
  shape; the first call gets zeros, each later call gets the previous ``next_<name>``;
  resetting the model means going back to zeros;
- output ``probs``: float32 ``[1, n / output_hop_samples]``, the keyword probability of
  each output frame; frame ``i`` ends at sample ``(i + 1) * output_hop_samples`` of the
  chunk.

Metadata (ONNX ``metadata_props``, all values strings): see the ``KEY_*`` constants.
``wakeword.calibration`` (written by ``export/calibrate.py``) holds at least
``{"target_fa_per_hour": 0.5, "thresholds": {"0.5": t, "0.1": t}, "miss_rate": {"0.5": m, ...},
"decision": {"smoothing_frames": 1, "refractory_s": 2.0}, "negative_hours": h}``: the device
should apply ``decision`` with the threshold, since the threshold was calibrated under it.
Since December 2026 also ``basis`` (the negative groups the thresholds were chosen on: the real
ones when there was enough real audio), ``basis_hours``, ``fa_per_hour_by_group`` and, with real
audio, ``real_negatives`` (files, folders, ``../shared/data`` speakers); readers ignore what they
do not know.
``wakeword.stream`` repeats the chunk rules derived from the audio parameters (for people and
tools reading the file); :func:`check_graph` checks a graph's inputs against the metadata.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from device.params import AudioParams, ParamsError

FORMAT_VERSION = 2
"""Bumped whenever the graph contract or the metadata keys change incompatibly.
1: log-mel CRNN, 20 ms frames (no longer run); 2: pretrained speech front end + head, 80 ms
frames, ``AudioParams.frontend`` names the front end."""
SUPPORTED_FORMATS = frozenset({2})

INPUT_AUDIO = "audio"
OUTPUT_PROBS = "probs"
STATE_IN_PREFIX = "state_"
STATE_OUT_PREFIX = "next_"

KEY_FORMAT = "wakeword.format"  # "1"
KEY_KEYWORD = "wakeword.keyword"  # "computer"
KEY_AUDIO_PARAMS = "wakeword.audio_params"  # AudioParams.to_json()
KEY_THRESHOLD = "wakeword.threshold"  # "0.83": the calibrated default threshold
KEY_CALIBRATION = "wakeword.calibration"  # JSON: how the threshold was chosen (targets, miss rates)
KEY_MODEL_VERSION = "wakeword.model_version"  # free text, e.g. "computer-20261124T1030-3f2a9c"
KEY_TRAINING = "wakeword.training"  # JSON: voices, clip counts, seed, steps, config
KEY_VERSIONS = "wakeword.versions"  # JSON: torch, onnx, opset, wakeword code version
KEY_STREAM = "wakeword.stream"  # JSON: chunk rules and state shapes (informative)
KEY_FRONTEND = "wakeword.frontend"  # JSON: the pretrained front end: name, sha256, origin, licence

REQUIRED_KEYS = (KEY_FORMAT, KEY_KEYWORD, KEY_AUDIO_PARAMS, KEY_THRESHOLD)


class ModelMetaError(ValueError):
    """A model file whose metadata this code cannot run; the message is one plain line."""


@dataclass(frozen=True)
class ModelMeta:
    keyword: str
    params: AudioParams
    threshold: float
    format: int = FORMAT_VERSION
    model_version: str = ""
    calibration: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)
    stream: dict = field(default_factory=dict)
    frontend: dict = field(default_factory=dict)

    def to_props(self) -> dict[str, str]:
        """Metadata as ONNX ``metadata_props`` (string -> string)."""
        return {
            KEY_FORMAT: str(self.format),
            KEY_KEYWORD: self.keyword,
            KEY_AUDIO_PARAMS: self.params.to_json(),
            KEY_THRESHOLD: repr(float(self.threshold)),
            KEY_MODEL_VERSION: self.model_version,
            KEY_CALIBRATION: json.dumps(self.calibration, sort_keys=True),
            KEY_TRAINING: json.dumps(self.training, sort_keys=True),
            KEY_VERSIONS: json.dumps(self.versions, sort_keys=True),
            KEY_STREAM: json.dumps(self.stream, sort_keys=True),
            KEY_FRONTEND: json.dumps(self.frontend, sort_keys=True),
        }

    @classmethod
    def from_props(cls, props: dict[str, str], source: str = "model") -> ModelMeta:
        """Parse and validate; raises :class:`ModelMetaError` with one clear line."""
        missing = [k for k in REQUIRED_KEYS if k not in props]
        if missing:
            raise ModelMetaError(
                f"{source} is not a wakeword model (metadata {', '.join(missing)} missing); "
                "export it with `make export`"
            )
        try:
            fmt = int(props[KEY_FORMAT])
        except ValueError:
            raise ModelMetaError(f"{source}: bad {KEY_FORMAT} value {props[KEY_FORMAT]!r}") from None
        if fmt not in SUPPORTED_FORMATS:
            hint = (
                "a model of the first version (log-mel CRNN); train it again with `make train export`"
                if fmt < FORMAT_VERSION
                else "update the device code (`make deploy`)"
            )
            raise ModelMetaError(
                f"{source} has model format {fmt}, this wakeword supports "
                f"{', '.join(map(str, sorted(SUPPORTED_FORMATS)))}: {hint}"
            )
        try:
            params = AudioParams.from_json(props[KEY_AUDIO_PARAMS])
        except (ParamsError, TypeError) as exc:
            raise ModelMetaError(f"{source}: bad audio parameters: {exc}") from None
        try:
            threshold = float(props[KEY_THRESHOLD])
        except ValueError:
            raise ModelMetaError(f"{source}: bad threshold {props[KEY_THRESHOLD]!r}") from None
        if not 0.0 < threshold < 1.0:
            raise ModelMetaError(f"{source}: threshold {threshold} is outside (0, 1)")

        def _json(key: str) -> dict:
            try:
                value = json.loads(props.get(key) or "{}")
            except json.JSONDecodeError:
                raise ModelMetaError(f"{source}: metadata {key} is not valid JSON") from None
            return value if isinstance(value, dict) else {}

        return cls(
            keyword=props[KEY_KEYWORD],
            params=params,
            threshold=threshold,
            format=fmt,
            model_version=props.get(KEY_MODEL_VERSION, ""),
            calibration=_json(KEY_CALIBRATION),
            training=_json(KEY_TRAINING),
            versions=_json(KEY_VERSIONS),
            stream=_json(KEY_STREAM),
            frontend=_json(KEY_FRONTEND),
        )


def check_graph(meta: ModelMeta, input_shapes: dict[str, list], output_names: list[str], source: str = "model") -> None:
    """Check a graph's inputs/outputs against the contract and ``meta``; one-line ModelMetaError.

    ``input_shapes``: input name -> shape as onnxruntime reports it (ints, or strings for
    dynamic axes). The audio-context state must be ``[1, window - hop]`` samples of
    ``meta.params``: a model whose metadata names another sample rate or window than the
    graph was built for fails here instead of running on wrongly framed audio.
    """
    if INPUT_AUDIO not in input_shapes or OUTPUT_PROBS not in output_names:
        raise ModelMetaError(
            f"{source} lacks the {INPUT_AUDIO!r} input or the {OUTPUT_PROBS!r} output; re-export it with `make export`"
        )
    for name in input_shapes:
        if name.startswith(STATE_IN_PREFIX) and STATE_OUT_PREFIX + name[len(STATE_IN_PREFIX) :] not in output_names:
            raise ModelMetaError(
                f"{source}: state input {name!r} has no matching "
                f"{STATE_OUT_PREFIX + name[len(STATE_IN_PREFIX) :]!r} output"
            )
    for name, shape in input_shapes.items():
        if name.startswith(STATE_IN_PREFIX) and not all(isinstance(d, int) and d > 0 for d in shape):
            raise ModelMetaError(f"{source}: state input {name!r} has no fixed shape ({shape})")
    audio_state = input_shapes.get(STATE_IN_PREFIX + "audio")
    want = [1, meta.params.context_samples]
    if audio_state is not None and list(audio_state) != want:
        raise ModelMetaError(
            f"{source}: graph carries {audio_state} samples of audio context, but its metadata "
            f"({meta.params.sample_rate} Hz, {meta.params.window_ms} ms window, {meta.params.hop_ms} ms hop) "
            f"needs {want}; the metadata does not describe this graph, re-export it"
        )
