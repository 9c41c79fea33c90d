"""The daemon's TOML config: the shipped example, and one clear line (exit 2) for bad values."""

from __future__ import annotations

import dataclasses

import pytest

from device import config
from device.config import ConfigError, DaemonConfig
from tests.device.daemon_helpers import REPO, run_wakeword, write_config

EXAMPLE = REPO / "device" / "config.example.toml"


def test_example_config_loads_and_documents_the_defaults():
    cfg = config.load(EXAMPLE)
    assert cfg.model == "/opt/wakeword/current/model.onnx"
    # every value in the example is the default, apart from the model path
    assert dataclasses.replace(cfg, model="") == DaemonConfig()
    text = EXAMPLE.read_text()
    for section, f in config.SECTIONS.items():
        assert f"[{section}]" in text
        for field in dataclasses.fields(f.default_factory):
            assert f"{field.name} =" in text or f"# {field.name} =" in text, (section, field.name)


def test_a_full_config_parses_into_typed_values(tmp_path):
    cfg = config.load(
        write_config(
            tmp_path / "c.toml",
            """
model = "/m.onnx"
threads = 2
[capture]
device = "USB"
channels = 4
use_channels = [0, 2]
rate_hz = 48000
[detect]
threshold = 0.7
refractory_s = 3
[gpio]
backend = "log"
pin = 27
active_high = false
mode = "pattern"
pattern_s = [0.2, 0.1, 0.2]
[save]
enabled = true
max_mb = 50
""",
        )
    )
    assert cfg.capture.use_channels == (0, 2) and cfg.capture.channels == 4
    assert cfg.detect.threshold == 0.7 and cfg.detect.refractory_s == 3.0
    assert isinstance(cfg.detect.refractory_s, float) and cfg.gpio.pattern_s == (0.2, 0.1, 0.2)
    assert cfg.gpio.active_high is False and cfg.save.max_mb == 50.0 and cfg.threads == 2


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("[capture]\ndevcie = 'x'\n", "unknown key 'devcie' (did you mean 'device'?)"),
        ("[gpoi]\npin = 3\n", "unknown section [gpoi] (did you mean 'gpio'?)"),
        ("[capture]\nchannels = 'four'\n", "[capture] channels must be a whole number"),
        ("[capture]\nchannels = 2\nuse_channels = [3]\n", "beyond channels = 2"),
        ("[detect]\nthreshold = 1.5\n", "threshold must be in (0, 1)"),
        ("[gpio]\nmode = 'blink'\n", "mode must be one of pulse, toggle, pattern"),
        ("[gpio]\nactive_high = 'yes'\n", "active_high must be true or false"),
        ("[save]\nmax_mb = -1\n", "max_mb must be positive"),
        ("threads = 0\n", "threads must be 1..64"),
        ("threads = 200\n", "threads must be 1..64"),
        ("[capture]\nqueue_s = nan\n", "[capture] queue_s must be a finite number"),
        ("[capture]\ninfer_every_s = inf\n", "[capture] infer_every_s must be a finite number"),
        ("[gpio]\non_s = inf\n", "[gpio] on_s must be a finite number"),
        ("[detect]\nrefractory_s = nan\n", "[detect] refractory_s must be a finite number"),
        ("[capture]\ninfer_every_s = 2.4\nstale_after_s = 2.0\n", "must be shorter than stale_after_s"),
        ("capture = 3\n", "capture must be a [capture] section"),
        ("[capture\n", "is not valid TOML"),
    ],
)
def test_bad_values_are_one_line_naming_the_key(tmp_path, text, fragment):
    path = write_config(tmp_path / "bad.toml", text)
    with pytest.raises(ConfigError) as exc:
        config.load(path)
    msg = str(exc.value)
    assert fragment in msg and str(path) in msg and "\n" not in msg


def test_cli_bad_config_exits_2_with_one_line(tmp_path, clips):
    path = write_config(tmp_path / "bad.toml", "[gpio]\npin = 99\n")
    r = run_wakeword(["listen", "--model", "x.onnx", "--config", str(path), "--input", str(clips["pos"])])
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "pin must be a BCM GPIO number" in r.stderr
    r = run_wakeword(["listen", "--model", "x.onnx", "--config", str(tmp_path / "missing.toml")])
    assert r.returncode == 2 and "does not exist" in r.stderr and "Traceback" not in r.stderr
    r = run_wakeword(["listen", "--input", str(clips["pos"])])
    assert r.returncode == 2 and "no model" in r.stderr
    r = run_wakeword(["listen", "--model", "x.onnx", "--threshold", "2", "--input", str(clips["pos"])])
    assert r.returncode == 2 and "threshold must be in (0, 1)" in r.stderr


def test_a_config_that_is_not_utf8_is_one_line(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes('[hook]\ncommand = "caf\xe9"\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match="is not UTF-8"):
        config.load(path)


def test_non_finite_overrides_and_model_decisions_are_refused():
    from device.decision import DecisionConfig

    with pytest.raises(ConfigError, match="finite"):
        config.override(DaemonConfig(), "capture", infer_every_s=float("nan"))
    with pytest.raises(ValueError, match="finite"):
        DecisionConfig(0.5, 1, float("nan"))  # a model whose calibration says refractory nan


def test_override_keeps_validation():
    cfg = config.override(DaemonConfig(), "capture", device="USB", channels=None)
    assert cfg.capture.device == "USB" and cfg.capture.channels == 0
    with pytest.raises(ConfigError, match="threshold"):
        config.override(cfg, "detect", threshold=0.0)


def test_channels_the_input_does_not_have_exit_2(tone_model, clips, tmp_path):
    path = write_config(tmp_path / "c.toml", '[capture]\nuse_channels = [2]\n[gpio]\nbackend = "log"\n')
    r = run_wakeword(["listen", "--model", str(tone_model), "--config", str(path), "--input", str(clips["pos"])])
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "use_channels: channel(s) [2] do not exist on a 1-channel input" in r.stderr
