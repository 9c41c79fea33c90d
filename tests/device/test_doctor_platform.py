"""`wakeword doctor` names an unsupported machine (32-bit OS, old Python) in one line, through its
check function, with the same words as deploy/pi/platform.sh."""

from __future__ import annotations

import platform
import struct
import sys

import pytest

from device.doctor import Report, check_platform, platform_problem


def lines_of(**machine) -> tuple[bool, list[str]]:
    lines: list[str] = []
    r = Report(emit=lines.append)
    return check_platform(r, **machine), lines


@pytest.mark.parametrize("machine, bits, python", [("aarch64", 64, (3, 11)), ("x86_64", 64, (3, 13))])
def test_64_bit_with_python_3_11_or_newer_is_ok(machine, bits, python):
    ok, lines = lines_of(machine=machine, pointer_bits=bits, python=python)
    assert ok and lines == [f"  ok    {bits}-bit {machine}, Python {python[0]}.{python[1]}"]


@pytest.mark.parametrize(
    "machine, bits, named",
    [
        ("aarch64", 32, "a 32-bit userland on the aarch64 kernel"),  # 32-bit Raspberry Pi OS on a Pi 4/5
        ("armv7l", 32, "armv7l"),
        ("armv6l", 32, "armv6l"),
    ],
)
def test_a_32_bit_arm_os_is_one_fail_line_naming_the_fix(machine, bits, named):
    ok, lines = lines_of(machine=machine, pointer_bits=bits, python=(3, 11))
    assert not ok
    assert lines == [
        f"  FAIL  unsupported Pi: a 32-bit OS ({named}); onnxruntime publishes no 32-bit ARM wheel: "
        "install the 64-bit Raspberry Pi OS (arm64)"
    ]


@pytest.mark.parametrize("machine, bits", [("i686", 32), ("riscv64", 64)])
def test_machines_without_onnxruntime_wheels_are_named(machine, bits):
    why = platform_problem(machine, bits, (3, 11))
    assert why == (
        f"unsupported machine: {bits}-bit {machine}; onnxruntime publishes wheels for 64-bit ARM "
        "and x86 only: install the 64-bit Raspberry Pi OS (arm64)"
    )


@pytest.mark.parametrize("python", [(3, 9), (3, 10)])
def test_python_older_than_3_11_is_named(python):
    assert platform_problem("aarch64", 64, python) == (
        f"unsupported Pi: Python {python[0]}.{python[1]}; wakeword needs Python 3.11 or newer: "
        "install the 64-bit Raspberry Pi OS Bookworm or later"
    )


def test_this_machine_is_described_by_the_running_python():
    ok, lines = lines_of()
    bits = struct.calcsize("P") * 8
    assert ok and lines == [
        f"  ok    {bits}-bit {platform.machine()}, Python {sys.version_info[0]}.{sys.version_info[1]}"
    ]
