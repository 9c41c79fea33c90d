"""Fuzzing the parsers that take outside input (hypothesis, a few seconds each in `make test`;
`FUZZ_EXAMPLES=5000 .venv/bin/python -m pytest tests/fuzz` runs longer: 5000 each took 83 s, nothing found).
Each may accept or refuse with its own
one-line error type -- never anything else (no traceback wall, no hang)."""

from __future__ import annotations

import asyncio
import json
import os
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**6), 10**6), st.floats(allow_nan=True), st.text(max_size=20)
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=12,
)
KNOWN_KEYS = [
    "model",
    "threads",
    "log_level",
    "device",
    "channels",
    "use_channels",
    "rate_hz",
    "queue_s",
    "stale_after_s",
    "infer_every_s",
    "threshold",
    "smoothing_frames",
    "refractory_s",
    "pin",
    "mode",
    "on_s",
    "pattern_s",
    "command",
    "timeout_s",
    "enabled",
    "max_mb",
    "uri",
    "models",
    "margin_db",
    "host",
    "port",
    "username",
    "password_file",
    "topic_prefix",
    "qos",
    "tls",
    "ca_file",
    "keep_last",
    "per_hour",
    "length_s",
    "guard_s",
    "near_miss",
    "detect",
    "gpio",
    "hook",
]
SECTIONS = ["capture", "detect", "gate", "gpio", "hook", "save", "snippets", "wyoming", "mqtt", "keywords"]


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(KNOWN_KEYS + SECTIONS + ["junk"]),
        st.one_of(
            values,
            st.dictionaries(st.sampled_from(KNOWN_KEYS), values, max_size=5),
            st.lists(st.dictionaries(st.sampled_from(KNOWN_KEYS), values, max_size=5), max_size=3),
        ),
        max_size=6,
    )
)
def test_daemon_config_accepts_or_says_config_error(data):
    from device.config import ConfigError, from_dict

    try:
        from_dict(data, "fuzz.toml")
    except ConfigError as exc:
        assert "\n" not in str(exc)


def _wav(channels: int, rate: int, width: int, fmt: int, payload: bytes, claimed: int | None) -> bytes:
    block = max(1, channels * width)
    fmt_chunk = struct.pack("<HHIIHH", fmt, channels, rate, rate * block, block, 8 * width)
    data_len = len(payload) if claimed is None else claimed
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt_chunk)) + fmt_chunk + b"data" + struct.pack("<I", data_len)
    return b"RIFF" + struct.pack("<I", len(body) + len(payload)) + body + payload


@FUZZ
@given(
    st.integers(0, 9),
    st.integers(0, 400000),
    st.integers(0, 5),
    st.sampled_from([1, 3, 0xFFFE, 7]),
    st.binary(max_size=600),
    st.one_of(st.none(), st.integers(0, 2**32 - 1)),
    st.booleans(),
)
def test_wav_reader_reads_or_says_wav_error(tmp_path_factory, channels, rate, width, fmt, payload, claimed, garble):
    from device.wavio import WavError, iter_int16_blocks, wav_info

    raw = _wav(channels, rate, width, fmt, payload, claimed)
    if garble:
        raw = raw[: len(raw) // 2]
    path = tmp_path_factory.mktemp("wav") / "x.wav"
    path.write_bytes(raw)
    try:
        info = wav_info(path)
        for frames, data in iter_int16_blocks(path, 64):
            assert len(data) == 2 * frames * info.channels
    except WavError as exc:
        assert "\n" not in str(exc)


@FUZZ
@given(values)
def test_label_parser_accepts_or_says_label_error(data):
    from train.label.labels import LabelError, parse

    try:
        label = parse(data, 5.0)
        assert all(0 <= a < b <= 5.0 for a, b in label.keyword_spans)
    except LabelError as exc:
        assert "\n" not in str(exc)


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "wakeword.format",
                "wakeword.keyword",
                "wakeword.audio",
                "wakeword.threshold",
                "wakeword.calibration",
                "wakeword.stream",
                "wakeword.model_version",
                "wakeword.frontend",
                "other",
            ]
        ),
        st.one_of(st.text(max_size=30), values.map(json.dumps)),
        max_size=9,
    )
)
def test_model_metadata_accepts_or_says_model_meta_error(props):
    from device.modelmeta import ModelMeta, ModelMetaError

    try:
        ModelMeta.from_props(props, source="fuzz")
    except ModelMetaError as exc:
        assert "\n" not in str(exc)


@FUZZ
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=80),
            values.map(lambda v: (json.dumps({"type": "audio-chunk", "data": v}) + "\n").encode()),
            st.builds(
                lambda n, p: (json.dumps({"type": "x", "payload_length": n}) + "\n").encode() + p,
                st.integers(-5, 10**12),
                st.binary(max_size=20),
            ),
        ),
        max_size=4,
    )
)
def test_wyoming_reader_reads_or_says_protocol_error(chunks):
    from device.wyoming_server import ProtocolError, read_event

    async def read_all():
        reader = asyncio.StreamReader(limit=64 * 1024)
        reader.feed_data(b"".join(chunks))
        reader.feed_eof()
        for _ in range(20):
            try:
                event = await read_event(reader)
            except ProtocolError as exc:
                assert "\n" not in str(exc)
                return
            if event is None:
                return

    asyncio.run(asyncio.wait_for(read_all(), timeout=10))


@FUZZ
@given(
    st.one_of(st.integers(-5, 500000), st.floats(), st.none(), st.text(max_size=4)),
    st.one_of(st.integers(-2, 9), st.none()),
    st.one_of(st.integers(-2, 70), st.none()),
    st.binary(max_size=64),
)
def test_wyoming_audio_converts_or_says_protocol_error(rate, width, channels, audio):
    from wyoming.audio import AudioChunk

    from device.wyoming_server import ProtocolError, chunk_audio

    try:
        out = chunk_audio(AudioChunk(rate=rate, width=width, channels=channels, audio=audio))
        assert out.ndim == 1 and out.dtype.kind == "f"
    except ProtocolError as exc:
        assert "\n" not in str(exc)
