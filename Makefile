# wakeword -- `make` alone prints this help.
#   make train export          train the keyword (default "computer") and write build/<keyword>/model.onnx
#   make deploy HOST=pi        install it on a Pi (or HOST="pi1 pi2") and start wakeword.service
#   make test                  everything that runs without a Pi
#   make bench                 accuracy, latency, CPU, memory -> build/<keyword>/bench/
# Variables: KEYWORD=computer  QUICK=1 (small, minutes)  NPROC=N (distributed training)
#            HOST="pi1 pi2"  DRY_RUN=1  CONFIG=extra.toml  SET="section.key=value ..."

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
# Options every pipeline stage understands: keyword, config layers, overrides, quick mode.
STAGE_OPTS = --keyword "$(KEYWORD)" --build "$(BUILD)" $(if $(QUICK),--quick) \
             $(foreach f,$(CONFIG),--config $(f)) $(foreach s,$(SET),--set $(s))

.DEFAULT_GOAL := help
.PHONY: help setup setup-test data train export test bench finetune loop deploy status logs undeploy e2e-pi \
        record label collect clean

help:  ## show this help
	@sed -n '2,8p' Makefile | sed 's/^# \{0,1\}//'
	@echo
	@grep -E '^[a-z0-9-]+:.*## ' Makefile | sed 's/:.*## /\t/' | expand -t 14 | sed 's/^/  /'

setup:  ## create .venv and install what training needs (Debian packages too, when root)
	@scripts/setup.sh train

setup-test:
	@scripts/setup.sh test

data: setup  ## synthesise the labelled training clips -> build/<keyword>/dataset
	$(PY) -m train.dataset $(STAGE_OPTS)

train: data  ## train the model -> build/<keyword>/train (resumes if interrupted)
ifeq ($(NPROC),1)
	$(PY) -m train.train $(STAGE_OPTS)
else
	.venv/bin/torchrun --standalone --nproc-per-node=$(NPROC) -m train.train $(STAGE_OPTS)
endif

export: setup  ## export the best checkpoint -> build/<keyword>/model.onnx (+ report)
	$(PY) -m export $(STAGE_OPTS)

test: setup-test  ## run the test suite (everything that can run without a Pi)
	$(PY) -m pytest -q tests

bench: setup  ## measure accuracy, latency, CPU and memory -> build/<keyword>/bench/report.md
	$(PY) -m bench $(STAGE_OPTS) $(if $(PEERS),--peers)

finetune: setup  ## fine-tune the model on recordings/<keyword> (takes, labelled detections) -> build/<keyword>-ft
	$(PY) -m train.finetune $(STAGE_OPTS)

loop: setup  ## one turn of the field loop on ../shared/data, measured -> build/<keyword>-loop/loop-report.md
	$(PY) -m bench.fieldloop $(STAGE_OPTS)

# deploy/deploy.sh reads these from the environment (see its header); HOST=, MODEL=, PI_CONFIG=,
# SSH_CONFIG=, SSH_OPTS=, PURGE=1, LOG_LINES=, FOLLOW=1, SERVICE=listen|wyoming|both given on the
# command line reach it as well.
# (HOST goes through the environment, not the recipe line, where a shell would run "pi;reboot".)
DEPLOY_ENV = KEYWORD="$(KEYWORD)" MODEL="$(or $(MODEL),$(BUILD)/model.onnx)" DRY_RUN="$(DRY_RUN)"

deploy:  ## install the model and daemon on HOST="pi1 pi2" and start wakeword.service (SERVICE=wyoming|both: Home Assistant)
	@$(DEPLOY_ENV) deploy/deploy.sh deploy

status:  ## systemctl status wakeword on HOST
	@$(DEPLOY_ENV) deploy/deploy.sh status

logs:  ## recent journal of wakeword on HOST
	@$(DEPLOY_ENV) deploy/deploy.sh logs

undeploy:  ## stop, disable and remove wakeword from HOST
	@$(DEPLOY_ENV) deploy/deploy.sh undeploy

e2e-pi: setup-test  ## end-to-end on an emulated arm64 Pi (qemu; 12-25 minutes cold, 5-10 warm; LED_PIN=, KEEP_VM=1)
	@deploy/e2e-pi.sh

record: setup  ## record your own takes of the keyword (KIND=negative for other phrases; TAKES=N, DEVICE=name)
	$(PY) -m device.cli record --keyword "$(KEYWORD)" --out "recordings/$(KEYWORD)" \
	  $(if $(KIND),--kind $(KIND)) $(if $(TAKES),--takes $(TAKES)) $(if $(DEVICE),--device "$(DEVICE)")

label: setup  ## review and label recordings and saved detections in a local web page
	$(PY) -m train.label "recordings/$(KEYWORD)"

collect:  ## fetch saved detections from HOST for review
	@$(DEPLOY_ENV) deploy/collect.sh

clean:  ## remove build/ (keeps .venv and recordings)
	rm -rf build
