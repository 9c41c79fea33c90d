"""The ``wakeword`` command.

- ``wakeword listen``: the detector (the systemd service runs
  ``wakeword listen --config /etc/wakeword/config.toml``); ``--input FILE.wav`` streams a
  file through the same path instead of a microphone.
- ``wakeword devices``: the capture devices, their channel counts and rates.
- ``wakeword doctor``: checks what the daemon needs on this machine (:mod:`device.doctor`).
- ``wakeword record ...``: handed to :func:`device.record.main` (the recording tool).
- ``wakeword wyoming``: the models as a Wyoming wake-word service for Home Assistant
  (:mod:`device.wyoming_server`).

Exit status: 0 done (end of file, or SIGTERM/SIGINT); 1 a runtime failure (unreadable
input file, GPIO unavailable); 2 a bad command line or config; 3 a model the daemon cannot
run (missing, corrupt, other format, metadata not matching the graph).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time

from device import package_version

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_MODEL = 0, 1, 2, 3

log = logging.getLogger("wakeword")


class _Fatal(Exception):
    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="wakeword", description="Custom wake word detector for the Raspberry Pi.")
    p.add_argument("--version", action="version", version=f"wakeword {package_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ls = sub.add_parser("listen", help="listen for the keyword (the daemon)")
    ls.add_argument("--config", help="TOML config file (default: built-in defaults)")
    ls.add_argument("--model", help="model.onnx (overrides the config's model)")
    src = ls.add_mutually_exclusive_group()
    src.add_argument("--device", help="(part of) the input device name (overrides [capture] device)")
    src.add_argument("--input", metavar="FILE.wav", help="stream a WAV file instead of a microphone")
    ls.add_argument(
        "--realtime",
        action="store_true",
        help="with --input: play the file at 1x speed, like a microphone (default: as fast as possible)",
    )
    ls.add_argument(
        "--json", action="store_true", help='print one JSON line per detection: {"time_s", "score", "keyword"}'
    )
    ls.add_argument(
        "--scores",
        action="store_true",
        help='also print one JSON line per inference step: {"time_s", "score"} (max probability)',
    )
    ls.add_argument(
        "--frame-scores",
        action="store_true",
        help="also print every output frame's probability, one JSON line per step: "
        '{"start_s", "frame_s", "probs": [...]} (threshold sweeps with the exact decision rule)',
    )
    ls.add_argument(
        "--infer-every-s",
        type=float,
        metavar="S",
        help="audio per inference step (overrides [capture] infer_every_s; default the model's own, 0.48 s)",
    )
    ls.add_argument("--threshold", type=float, help="detection threshold (overrides config and model)")
    ls.add_argument(
        "--max-audio-s",
        type=float,
        metavar="S",
        help="stop after S seconds of audio (counted in frames, not wall time)",
    )
    ls.add_argument("--log-level", choices=["debug", "info", "warning", "error"])

    dv = sub.add_parser("devices", help="list audio capture devices")
    dv.add_argument("--json", action="store_true", help="one JSON object per device")

    dr = sub.add_parser("doctor", help="check what the daemon needs on this machine")
    dr.add_argument("--config", help="TOML config file (default: /etc/wakeword/config.toml if it exists)")
    dr.add_argument("--model", help="model.onnx (overrides the config's model)")
    dr.add_argument("--device", help="input device name (overrides the config)")

    wy = sub.add_parser("wyoming", help="serve the model(s) to Home Assistant over the Wyoming protocol")
    wy.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="FILE.onnx",
        help="a keyword model; repeat for several (default: the config's model and [wyoming] models)",
    )
    wy.add_argument("--config", help="TOML config file (model, [wyoming] uri and models, log level)")
    wy.add_argument(
        "--uri",
        help="where to listen: tcp://HOST:PORT or unix:///PATH "
        "(default: the config's [wyoming] uri, tcp://0.0.0.0:10400)",
    )
    wy.add_argument(
        "--no-zeroconf",
        action="store_true",
        help="do not announce the service on the local network (Home Assistant then needs host and port)",
    )
    wy.add_argument("--log-level", choices=["debug", "info", "warning", "error"])

    sub.add_parser("record", help="record your own keyword takes (see `wakeword record --help`)", add_help=False)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "record":
        try:
            from device import record  # the recording tool owns its own options
        except ModuleNotFoundError as exc:
            if exc.name != "device.record":
                raise
            print("wakeword: error: `wakeword record` is not part of this installation", file=sys.stderr)
            return EXIT_FAIL
        return record.main(argv[1:])
    args = _parser().parse_args(argv)
    try:
        if args.command == "listen":
            return listen(args)
        if args.command == "devices":
            return devices(args)
        if args.command == "doctor":
            from device import doctor

            return doctor.main(args)
        if args.command == "wyoming":
            return wyoming(args)
    except _Fatal as exc:
        print(f"wakeword: error: {exc}", file=sys.stderr)
        return exc.status
    return EXIT_USAGE


# -- listen ----------------------------------------------------------------------------
def _config(args):
    from device import config

    try:
        cfg = config.load(args.config)
        cfg = config.override(cfg, None, model=args.model, log_level=args.log_level)
        cfg = config.override(cfg, "capture", device=args.device, infer_every_s=args.infer_every_s)
        cfg = config.override(cfg, "detect", threshold=args.threshold)
    except config.ConfigError as exc:
        raise _Fatal(str(exc), EXIT_USAGE) from None
    if not cfg.model:
        raise _Fatal('no model: pass --model FILE.onnx or set model = "..." in the config', EXIT_USAGE)
    return cfg


def _load_engine(cfg):
    from device.engine import Engine, EngineError

    try:
        return Engine.load(cfg.model, threads=cfg.threads)
    except EngineError as exc:
        raise _Fatal(str(exc), EXIT_MODEL) from None


def _source_factory(args, cfg):
    from device.capture import AlsaProbe, Capture, Rescan
    from device.filesource import WavSource
    from device.wavio import WavError

    if args.input:
        import os
        import stat

        try:
            mode = os.stat(args.input).st_mode
        except OSError:
            mode = None  # WavSource says what is wrong, in one line
        if mode is not None and not stat.S_ISREG(mode):
            # a FIFO would block the open (and SIGTERM with it) until a writer comes
            raise _Fatal(
                f"{args.input}: not a regular file (--input takes a WAV file; for live audio use "
                '--device, or [capture] device = "file:...")',
                EXIT_FAIL,
            )
        try:
            WavSource(args.input)  # a bad file is one line now, not a retry loop later
        except WavError as exc:
            raise _Fatal(str(exc), EXIT_FAIL) from None
        return lambda session: WavSource(args.input, cfg.capture.block_ms, args.realtime, session, args.max_audio_s)
    c = cfg.capture
    if c.device.startswith("file:"):
        # A WAV file standing in for the microphone, paced at 1x (test rigs without audio hardware).
        path = c.device[len("file:") :]
        try:
            WavSource(path)
        except WavError as exc:
            raise _Fatal(str(exc), EXIT_FAIL) from None
        return lambda session: WavSource(path, c.block_ms, True, session, args.max_audio_s)
    quiet = cfg.log_level != "debug"
    rescan = Rescan(probe=AlsaProbe(quiet))  # one for all the reconnections: no scan while the device is away
    return lambda session: Capture(
        c.device, c.channels, c.rate_hz, c.block_ms, session, args.max_audio_s, quiet=quiet, rescan=rescan
    )


def _mqtt_output(cfg, keywords: list[str], outputs):
    """The MQTT publisher when ``[mqtt] host`` is set (it connects in the background), else None."""
    if not cfg.mqtt.enabled:
        return None
    from device.mqtt import MqttError, MqttOutput

    try:
        return MqttOutput(cfg.mqtt, keywords)
    except MqttError as exc:
        outputs.close()
        raise _Fatal(f"[mqtt] {exc}", EXIT_USAGE) from None


def _more_keywords(cfg, main_engine, main_outputs):
    """The ``[[keywords]]`` beside the main model: engine, decision and outputs of each. One
    not sharing the main model's audio numbers, or unloadable, stops the daemon in one line."""
    from device.config import ConfigError
    from device.decision import Decider
    from device.engine import Engine, EngineError
    from device.gpio import GpioError, open_pin
    from device.listener import KeywordUnit
    from device.outputs import HookRunner, Indicator, Outputs

    units: list[KeywordUnit] = []
    main = main_engine.params
    try:
        for i, kc in enumerate(cfg.keywords):
            where = f"[[keywords]] {i + 1} ({kc.model})"
            try:
                engine = Engine.load(kc.model, threads=cfg.threads)
                decision = kc.detect.resolve(engine.meta)
            except (EngineError, ConfigError) as exc:
                raise _Fatal(f"{where}: {exc}", EXIT_MODEL) from None
            p = engine.params
            if (p.sample_rate, p.output_hop_samples) != (main.sample_rate, main.output_hop_samples):
                raise _Fatal(
                    f"{where}: its model hears {p.sample_rate} Hz in {p.output_hop_s:g} s frames, the "
                    f"main model {main.sample_rate} Hz in {main.output_hop_s:g} s frames: one daemon "
                    "steps all its models on the same audio",
                    EXIT_MODEL,
                )
            if engine.meta.keyword in [main_engine.meta.keyword, *(u.keyword for u in units)]:
                raise _Fatal(f"{where}: keyword {engine.meta.keyword!r} is already listened for", EXIT_USAGE)
            indicator = main_outputs.indicator
            if kc.gpio is not None:
                try:
                    indicator = Indicator(
                        open_pin(kc.gpio.backend, kc.gpio.pin, kc.gpio.active_high, kc.gpio.fake_edge_log), kc.gpio
                    )
                except GpioError as exc:
                    raise _Fatal(f"{where}: {exc}", EXIT_FAIL) from None
            outputs = Outputs(engine.meta.keyword, indicator, HookRunner(kc.hook))
            units.append(KeywordUnit(engine, Decider(decision, engine.params.output_hop_s), outputs))
            log.info(
                "model %s: keyword %r, version %r; threshold %.3f, smoothing %d frame(s), refractory %g s",
                kc.model,
                engine.meta.keyword,
                engine.meta.model_version,
                decision.threshold,
                decision.smoothing_frames,
                decision.refractory_s,
            )
    except _Fatal:
        for o in (*(u.outputs for u in units), main_outputs):
            o.close()
        raise
    return tuple(units)


def _emit(obj: dict) -> None:
    print(json.dumps(obj), flush=True)


def _build(args, cfg, engine, notifier):
    """Everything around the engine: decision, GPIO, hook, MQTT, saver, gate -> the :class:`Listener`."""
    from device.clipsaver import ClipSaver, Keepers, SnippetKeeper
    from device.config import ConfigError
    from device.decision import Decider
    from device.gate import EnergyGate
    from device.gpio import GpioError, open_pin
    from device.listener import Listener
    from device.outputs import HookRunner, Indicator, Outputs
    from device.params import ParamsError

    meta = engine.meta
    try:
        decision = cfg.detect.resolve(meta)
    except ConfigError as exc:
        raise _Fatal(str(exc), EXIT_MODEL) from None
    make_source = _source_factory(args, cfg)
    try:
        pin = open_pin(cfg.gpio.backend, cfg.gpio.pin, cfg.gpio.active_high, cfg.gpio.fake_edge_log)
    except GpioError as exc:
        raise _Fatal(str(exc), EXIT_FAIL) from None
    outputs = Outputs(meta.keyword, Indicator(pin, cfg.gpio), HookRunner(cfg.hook))
    # a detection is reported at most one step (<= stale_after_s of audio) after it happened
    lag_s = max(cfg.capture.stale_after_s, engine.params.infer_every_s) + 1.0
    rate = engine.params.sample_rate
    keepers = Keepers(
        ClipSaver(cfg.save, rate, meta.keyword, meta.model_version, decision.threshold, lag_s)
        if cfg.save.enabled
        else None,
        SnippetKeeper(
            cfg.snippets, rate, meta.keyword, meta.model_version, decision.threshold, engine.params.output_hop_s, lag_s
        )
        if cfg.snippets.enabled
        else None,
    )
    saver = keepers or None
    on_det = (
        (
            lambda d: _emit(
                {"time_s": round(d.time_s, 6), "score": round(d.score, 6), "keyword": d.keyword or meta.keyword}
            )
        )
        if args.json
        else None
    )
    on_step = (lambda t, p: _emit({"time_s": round(t, 6), "score": round(p, 6)})) if args.scores else None
    frame_s = round(engine.params.output_hop_s, 6)
    on_frames = (
        (
            lambda t, probs: _emit(
                {"start_s": round(t, 6), "frame_s": frame_s, "probs": [round(float(p), 8) for p in probs]}
            )
        )
        if args.frame_scores
        else None
    )
    log.info(
        "model %s: keyword %r, version %r, %d Hz; threshold %.3f, smoothing %d frame(s), refractory %g s",
        cfg.model,
        meta.keyword,
        meta.model_version,
        engine.params.sample_rate,
        decision.threshold,
        decision.smoothing_frames,
        decision.refractory_s,
    )
    more = _more_keywords(cfg, engine, outputs)
    mqtt = _mqtt_output(cfg, [meta.keyword, *(u.keyword for u in more)], outputs)
    for o in (outputs, *(u.outputs for u in more)):
        o.mqtt = mqtt  # one publisher, one discovery entity per keyword
    try:
        return Listener(
            engine,
            Decider(decision, engine.params.output_hop_s),
            outputs,
            make_source,
            cfg.capture,
            live=not args.input or args.realtime,
            notifier=notifier,
            saver=saver,
            gate=EnergyGate(cfg.gate) if cfg.gate.enabled else None,
            on_step=on_step,
            on_detection=on_det,
            on_frames=on_frames,
            more_keywords=more,
        )
    except ParamsError as exc:
        for u in more:
            u.outputs.close()
        outputs.close()
        raise _Fatal(f"[capture] infer_every_s: {exc}", EXIT_USAGE) from None


def listen(args) -> int:
    from device import heap
    from device.listener import ChannelError
    from device.sdnotify import Notifier, setup_logging
    from device.stopflag import StopFlag
    from device.wavio import WavError

    cfg = _config(args)
    setup_logging(getattr(logging, cfg.log_level.upper()))
    heap.limit_arenas()  # before the audio threads start (device/heap.py: why)
    stop = StopFlag()
    stop.install()
    engine = _load_engine(cfg)
    notifier = Notifier()
    listener = _build(args, cfg, engine, notifier)
    cpu0 = time.process_time()
    try:
        listener.run(stop)
    except WavError as exc:
        raise _Fatal(str(exc), EXIT_FAIL) from None
    except ChannelError as exc:
        raise _Fatal(str(exc), EXIT_USAGE) from None
    finally:
        notifier.stopping()
        if listener.saver is not None:
            listener.saver.flush()
        listener.close_outputs()  # LEDs off, whatever happened
        notifier.close()
    s = listener.stats
    why = f" on signal {stop.signal}" if stop.signal else ""
    log.info(
        "stopped%s: %.1f s of audio, %d detection(s), %d step(s), %.1f s dropped, %.4f CPU s",
        why,
        s.audio_s,
        s.detections,
        s.steps,
        listener.dropped_s,
        time.process_time() - cpu0,
    )
    return EXIT_OK


# -- wyoming ---------------------------------------------------------------------------
def wyoming(args) -> int:
    import asyncio

    from device import config
    from device.engine import EngineError
    from device.sdnotify import Notifier, setup_logging

    try:
        cfg = config.override(config.load(args.config), None, log_level=args.log_level)
        cfg = config.override(cfg, "wyoming", uri=args.uri, zeroconf=False if args.no_zeroconf else None)
    except config.ConfigError as exc:
        raise _Fatal(str(exc), EXIT_USAGE) from None
    models = args.model or ([cfg.model] if cfg.model else []) + list(cfg.wyoming.models)
    if not models:
        raise _Fatal(
            'no model: pass --model FILE.onnx (repeat for several) or set model = "..." in the config', EXIT_USAGE
        )
    setup_logging(getattr(logging, cfg.log_level.upper()))
    from device import heap
    from device.wyoming_server import load_service, serve

    heap.limit_arenas()

    try:
        service = load_service(models)
    except EngineError as exc:
        raise _Fatal(str(exc), EXIT_MODEL) from None
    except ValueError as exc:
        raise _Fatal(str(exc), EXIT_USAGE) from None
    notifier = Notifier()
    try:
        asyncio.run(serve(cfg.wyoming, service, notifier))
    except OSError as exc:  # the port is taken, the socket path unwritable
        raise _Fatal(f"cannot listen on {cfg.wyoming.uri}: {exc.strerror or exc}", EXIT_FAIL) from None
    finally:
        notifier.stopping()
        notifier.close()
    return EXIT_OK


# -- devices ---------------------------------------------------------------------------
def devices(args) -> int:
    from device.capture import describe_devices

    found = describe_devices()
    if args.json:
        for d, rates in found:
            _emit(
                {
                    "index": d.index,
                    "name": d.name,
                    "channels": d.max_input_channels,
                    "default_rate_hz": d.default_rate_hz,
                    "rates_hz": rates,
                }
            )
        return EXIT_OK
    if not found:
        print("no capture devices found (is the microphone plugged in? `arecord -l` lists ALSA cards)")
        return EXIT_FAIL
    rates_txt = [",".join(map(str, rates)) or "-" for _, rates in found]
    w = max(len("rates (Hz)"), *map(len, rates_txt))
    print(f"{'#':>3}  {'channels':>8}  {'default Hz':>10}  {'rates (Hz)':<{w}}  name")
    for (d, _), rt in zip(found, rates_txt):
        print(f"{d.index:>3}  {d.max_input_channels:>8}  {d.default_rate_hz:>10}  {rt:<{w}}  {d.name}")
    print("\nuse (part of) a name as [capture] device in the config, or --device NAME")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
