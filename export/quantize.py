"""Optional int8 variant of an exported model (onnxruntime dynamic quantization).

Only weight layers after the log-mel are quantized. The log-mel itself (the DFT convolution
and the mel projection, recognisable by their ``frontend.dft`` / ``frontend.mel``
initializers) stays float32: its input spans many decades of energy, and 8-bit audio or
power would erase quiet speech. onnxruntime's dynamic quantizer handles Conv and MatMul but
not GRU, so the front end's convolutions and the head's output layer become int8; whether
that pays off is measured (see :mod:`export.bench`), and the pipeline keeps the variant only
when its miss rate at the calibrated false-accept target stays within a stated bound of the
float32 model's and it is cheaper.
"""

from __future__ import annotations

import logging
import os

import onnx

from device.fsutil import atomic_path

log = logging.getLogger(__name__)

FLOAT_PREFIXES = ("frontend.dft", "frontend.mel")


def frontend_nodes(proto: onnx.ModelProto) -> list[str]:
    """Names of the nodes that read the log-mel's constants (kept in float32)."""
    consts = {i.name for i in proto.graph.initializer if i.name.startswith(FLOAT_PREFIXES)}
    return [n.name for n in proto.graph.node if consts.intersection(n.input)]


class _QuietRoot(logging.Filter):
    """Drop the quantizer's chatter (advice, per-tensor notes), which it logs on the root logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name != "root"


def quantize_int8(src: str | os.PathLike, dst: str | os.PathLike) -> list[str]:
    """Write the int8 variant of the model at ``src`` to ``dst`` (atomically, metadata kept).

    Returns the names of the nodes that were quantized (empty: nothing to gain).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    proto = onnx.load(str(src))
    exclude = frontend_nodes(proto)
    quiet = _QuietRoot()
    logging.getLogger().addFilter(quiet)
    try:
        with atomic_path(dst) as tmp:
            # reduce_range: 7-bit weights. x86 CPUs without VNNI (AVX2 only) multiply u8 x s8 with an
            # instruction that saturates its 16-bit sums; full-range weights then give wrong scores
            # there (measured: 0.53 off in probability on an AVX2-only EPYC, against < 0.2 elsewhere).
            quantize_dynamic(
                str(src), str(tmp), weight_type=QuantType.QInt8, nodes_to_exclude=exclude, reduce_range=True
            )
            out = onnx.load(str(tmp))
            onnx.checker.check_model(out)
    finally:
        logging.getLogger().removeFilter(quiet)
    quantized = sorted({n.name for n in out.graph.node if n.op_type in ("ConvInteger", "MatMulInteger")})
    log.info("int8: %d integer nodes, %d front-end nodes kept float32", len(quantized), len(exclude))
    return quantized
