"""The emulated-Pi harness (`make e2e-pi`) without a VM: suite choice, and reading the LED back."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from deploy.testbed import e2e_pi
from deploy.testbed.qemu import IMAGE_BUILDER, SUITES
from tests.deploy.deploy_helpers import assert_root_builder_refuses


def test_suites_are_bookworm_and_trixie():
    assert SUITES == ("bookworm", "trixie")


@pytest.mark.parametrize("suite", ["sid", "trixie; touch /tmp/x", "Bookworm", "--"])
def test_pi_image_rejects_an_unknown_suite_before_anything_else(suite, tmp_path):
    assert_root_builder_refuses(IMAGE_BUILDER, suite, tmp_path / "cache", "unknown suite")


def test_e2e_pi_rejects_an_unknown_suite(monkeypatch, capsys):
    monkeypatch.setattr(e2e_pi.os, "geteuid", lambda: 0)
    monkeypatch.setenv("SUITE", "buster")
    monkeypatch.delenv("LED_PIN", raising=False)
    assert e2e_pi.main() == 2
    assert "SUITE must be one of bookworm, trixie" in capsys.readouterr().err


def test_pi_config_backend():
    assert 'backend = "rpi"' in e2e_pi.pi_config(6)
    assert 'backend = "auto"' in e2e_pi.pi_config(6, "auto")


class FakeSsh:
    def __init__(self, answers: dict[str, str]):
        self.answers = answers
        self.config = Path("/nonexistent")

    def run(self, command, check=True, timeout_s=600, input_bytes=None):
        for prefix, out in self.answers.items():
            if command.startswith(prefix):
                return SimpleNamespace(stdout=out, stderr="", returncode=0)
        raise AssertionError(f"unexpected command {command}")


def scenario(answers: dict[str, str]) -> e2e_pi.Scenario:
    vm = SimpleNamespace(ssh=FakeSsh(answers))
    return e2e_pi.Scenario(vm, Path("m.onnx"), {}, Path("/tmp"), led_pin=6)


def test_a_python_the_gpio_lock_has_wheels_for_drives_the_line():
    s = scenario({"python3 -c": "cp311-aarch64 3.11.2\n"})
    s.pi_platform()
    assert s.led_driven and s.locks == (e2e_pi.LOCK, e2e_pi.GPIO_LOCK) and s.difference == ""


def test_a_python_without_gpio_wheels_logs_the_led_and_says_how_it_differs():
    s = scenario({"python3 -c": "cp313-aarch64 3.13.5\n"})
    s.pi_platform()
    assert not s.led_driven
    assert s.locks == (e2e_pi.LOCK,)
    assert "Python 3.13.5" in s.difference and "cp313-aarch64" in s.difference


def test_logged_led_states_come_from_the_journal():
    journal = (
        "[  101.250000] pibox wakeword[812]: 2026-01-01 LED (GPIO 6, log backend) on\n"
        "[  104.300000] pibox wakeword[812]: 2026-01-01 LED (GPIO 6, log backend) off\n"
        "[  105.000000] pibox wakeword[812]: LED (GPIO 5, log backend) on\n"
        "[  106.000000] pibox wakeword[812]: detected 'tone' LED (GPIO 6, log backend) onwards\n"
    )
    s = scenario({"sudo -n journalctl": journal})
    s.led_driven = False
    assert s.led_states() == [(101.25, "hi"), (104.3, "lo")]
