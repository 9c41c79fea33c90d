# wakeword -- `make` alone prints this help.
#   make train export          train the keyword (default "computer") and write build/<keyword>/model.onnx
#   make deploy HOST=pi        install it on a Pi (or HOST="pi1 pi2") and start wakeword.service
#   make test                  everything that runs without a Pi
#   make bench                 accuracy, latency, CPU, memory -> build/<keyword>/bench/
#   make soak                  2 h of live audio with faults injected -> build/<keyword>/soak/ (QUICK=1: minutes)
# Variables: KEYWORD=computer  QUICK=1 (small, minutes)  NPROC=N (distributed training)
#            HOST="pi1 pi2"  DRY_RUN=1  CONFIG=extra.toml  SET="section.key=value ..."  MINUTES=N (soak)

SHELL := /bin/bash
KEYWORD ?= computer
QUICK ?=
NPROC ?= 1
CONFIG ?=
SET ?=
HOST ?=
DRY_RUN ?=
PY := .venv/bin/python
BUILD := build/$(KEYWORD)
MODEL ?= $(BUILD)/model.onnx
MINUTES ?=
DISTROS ?= bookworm trixie noble
# make soak passes --model only when MODEL was given (else: <build>/model.onnx, or the tone model with QUICK=1);
# AUDIO=file.wav (+ .json keyword_spans) gives a real model its keywords (default: make bench's positive stream)
SOAK_MODEL := $(if $(filter file,$(origin MODEL)),,1)
# User values travel to the recipes through the environment, never pasted into a shell line
# (a KEYWORD, MODEL or SET with quotes or `;` in it stays one argument): scripts/stage.sh builds
# the options every pipeline stage understands (keyword, build, config layers, overrides, quick).
export KEYWORD QUICK NPROC CONFIG SET HOST DRY_RUN BUILD MODEL MODELS PEERS KIND TAKES DEVICE MINUTES SOAK_MODEL AUDIO DISTROS MBROLA
STAGE := scripts/stage.sh

.DEFAULT_GOAL := help
.PHONY: help setup setup-test data train export test bench soak finetune loop deploy status logs undeploy e2e-pi lock \
        fresh-systems voices record label collect clean

help:  ## show this help
	@sed -n '2,9p' Makefile | sed 's/^# \{0,1\}//'
	@echo
	@grep -E '^[a-z0-9-]+:.*## ' Makefile | sed 's/:.*## /\t/' | expand -t 14 | sed 's/^/  /'

setup:  ## create .venv and install what training needs (Debian packages too, when root)
	@scripts/setup.sh train

setup-test:
	@scripts/setup.sh test

data: setup  ## synthesise the labelled training clips -> build/<keyword>/dataset
	@NPROC=1 $(STAGE) train.dataset

train: data  ## train the model -> build/<keyword>/train (resumes if interrupted)
	@$(STAGE) train.train

export: setup  ## export the best checkpoint -> build/<keyword>/model.onnx (+ report)
	@NPROC=1 $(STAGE) export

test: setup-test  ## lint, format check and type check, then the test suite (everything that can run without a Pi)
	.venv/bin/ruff check device train export bench deploy tests
	.venv/bin/ruff format --check device train export bench deploy tests
	.venv/bin/mypy
	$(PY) -m pytest -q tests

bench: setup  ## measure accuracy, latency, CPU and memory -> build/<keyword>/bench/report.md
	@NPROC=1 $(STAGE) bench $${PEERS:+--peers}

soak: setup-test  ## MINUTES=120 of live audio, faults injected -> build/<keyword>/soak/ (QUICK=1: tone model)
	$(PY) -m bench.soak --keyword "$$KEYWORD" $${SOAK_MODEL:+--model "$$MODEL"} $${MINUTES:+--minutes "$$MINUTES"} \
	  $${AUDIO:+--audio "$$AUDIO"} $${QUICK:+--quick}

finetune: setup  ## fine-tune the model on recordings/<keyword> (takes, labelled detections) -> build/<keyword>-ft
	@NPROC=1 $(STAGE) train.finetune

loop: setup  ## one turn of the field loop on ../shared/data, measured -> build/<keyword>-loop/loop-report.md
	@NPROC=1 $(STAGE) bench.fieldloop

# deploy/deploy.sh reads these from the environment (see its header); HOST=, MODEL=, PI_CONFIG=,
# SSH_CONFIG=, SSH_OPTS=, PURGE=1, LOG_LINES=, FOLLOW=1, SERVICE=listen|wyoming|both given on the
# command line reach it as well.
# (Everything goes through the environment, not the recipe line, where a shell would run "pi;reboot".)

deploy:  ## install the model and daemon on HOST="pi1 pi2" and start wakeword.service (SERVICE=wyoming|both: Home Assistant)
	@deploy/deploy.sh deploy

status:  ## systemctl status wakeword on HOST
	@deploy/deploy.sh status

logs:  ## recent journal of wakeword on HOST
	@deploy/deploy.sh logs

undeploy:  ## stop, disable and remove wakeword from HOST
	@deploy/deploy.sh undeploy

# The Pi installs exactly these versions and wheels (pip --require-hashes); refresh after changing the
# `device` extra of pyproject.toml or upgrading the venv's onnxruntime/numpy (the tests say when).
lock: setup  ## pin the Pi's Python packages to this venv's versions + wheel hashes -> deploy/requirements*.lock (PyPI)
	$(PY) -m deploy.lock

e2e-pi: setup-test  ## end-to-end on an emulated arm64 Pi (qemu; 12-25 minutes cold, 5-10 warm; SUITE=trixie, LED_PIN=, KEEP_VM=1)
	@deploy/e2e-pi.sh

voices:  ## (root) more TTS voices: RHVoice and SVOX Pico from Debian contrib/non-free (MBROLA=1: MBROLA's, non-commercial)
	@scripts/extra-voices.sh

# The README's quick start on freshly installed machines (booted containers, a non-root user with sudo), each
# command timed: deploy/testbed/fresh.py, docs/fresh-systems.md. Needs no .venv (the runner is plain Python).
fresh-systems:  ## the quick start on fresh Debian 12, 13 and Ubuntu 24.04 containers, timed (root; DISTROS=) -> build/fresh-systems
	@nice -n 5 $(if $(wildcard $(PY)),$(PY),python3) -m deploy.testbed.fresh $${DISTROS}

record: setup  ## record your own takes of the keyword (KIND=negative: other phrases; KIND=check: takes kept out of training; TAKES=N, DEVICE=name)
	$(PY) -m device.cli record --keyword "$$KEYWORD" --out "recordings/$$KEYWORD" \
	  $${KIND:+--kind "$$KIND"} $${TAKES:+--takes "$$TAKES"} $${DEVICE:+--device "$$DEVICE"}

label: setup  ## review and label recordings and saved detections in a local web page
	$(PY) -m train.label "recordings/$$KEYWORD"

collect:  ## fetch saved detections from HOST for review
	@deploy/collect.sh

clean:  ## remove build/ (keeps .venv and recordings)
	rm -rf build
