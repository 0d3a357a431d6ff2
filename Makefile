# quadpilot: every target bootstraps .venv on first use, so a fresh clone needs no other step.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Debian packages the firmware and HIL stages need (checked by `make deps`).
DEB_PACKAGES := gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm clang cppcheck \
                stlink-tools dfu-util
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# The deployable hover policy (randomised, noisy, delayed world; train/config.py says
# how it is trained). PRESET=hover-nominal trains the nominal-world policy instead.
PRESET ?= hover
TRAIN_ARGS ?=
# The best evaluation (a run can get worse after its best point) of the newest run of
# PRESET: runs/latest-<preset> follows only that preset's runs, so `make train export hil`
# refers to one run whatever else was trained in between.
RUN    ?= runs/latest-$(PRESET)/best.pt
OUT    ?= artifacts

.PHONY: all venv deps test lint train sweep export crazyflie bench hil flash flash-dfu firmware clean help
all: help

help:
	@echo "make train export   train the default preset into runs/, export artifacts/"
	@echo "make sweep          seeds 1-4 of PRESET at once on a local Ray; runs/latest -> the best"
	@echo "make test           every test (Python, C, emulator); installs what it needs"
	@echo "make crazyflie      $(OUT)/crazyflie/: the policy as a Crazyflie out-of-tree controller app"
	@echo "make hil            emulator HIL of $(OUT)/ vs $(RUN): reports/hil.json, reports/hil.png;"
	@echo "                    with $(OUT)/crazyflie/ also the app's C on the board: crazyflie_board.json"
	@echo "make flash          build $(MODEL) for a real board and write it with an ST-LINK"
	@echo "make flash-dfu      the same over USB (board started with its BOOT button held)"
	@echo "make bench          refresh docs/benchmarks.md"
	@echo "make deps           install the Debian packages: $(DEB_PACKAGES)"
	@echo "make lint           ruff"

venv: $(STAMP)
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev,sweep]'
	touch $(STAMP)

# Installs only what is missing; without root and sudo it prints the command to run.
# Another apt or dpkg (updates being installed) holds the lock: wait for it up to
# APT_LOCK_WAIT seconds, then say in one line which process holds it.
APT_LOCK_WAIT ?= 300
deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then echo "deps: all Debian packages present"; exit 0; fi; \
	if [ "$$(id -u)" != 0 ] && ! command -v sudo >/dev/null; then \
	  echo "deps: missing:$$missing"; echo "run: apt-get update && apt-get install -y$$missing"; exit 1; fi; \
	echo "deps: installing$$missing"; \
	lock="-o DPkg::Lock::Timeout=$(APT_LOCK_WAIT)"; \
	if ! { $(SUDO) apt-get $$lock update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get $$lock install -y -qq $$missing; }; then \
	  holder=$$(ps -eo pid=,comm=,args= 2>/dev/null | grep -E '[[:space:]](apt|apt-get|dpkg|unattended-upgr|packagekitd|aptd)[[:space:]]' | grep -v grep | head -1 | cut -c1-80); \
	  if [ -n "$$holder" ]; then echo "deps: the package manager is still busy after $(APT_LOCK_WAIT) s (held by pid $$holder); run make deps again when it finishes" >&2; \
	  else echo "deps: apt-get failed; run: apt-get update && apt-get install -y$$missing" >&2; fi; exit 1; fi

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: $(STAMP) deps lint
	$(PY) -m pytest -q

train: $(STAMP)
	$(PY) -m train --preset $(PRESET) $(TRAIN_ARGS)

# Many runs at once on Ray Tune (the sweep extra); SWEEP_ARGS adds --grid, --address, ...
SWEEP_ARGS ?= --seeds 1 2 3 4 --pick best
sweep: $(STAMP)
	$(VENV)/bin/pip install -q -e '.[sweep]'
	$(PY) -m train sweep --preset $(PRESET) $(SWEEP_ARGS) $(TRAIN_ARGS)

export: $(STAMP)
	$(PY) -m export $(RUN) --out $(OUT) --expect-preset $(PRESET)

# A Crazyflie out-of-tree controller app around the exported policy: $(OUT)/crazyflie/
crazyflie: $(STAMP)
	$(PY) -m export --target crazyflie --out $(OUT)

bench: $(STAMP)
	$(VENV)/bin/pip install -q -e '.[bench]'
	$(PY) -m bench

# Then, when `make crazyflie` has written the app, the bench HIL of its own C: the flight
# build (the app in the same STM32F405 firmware) beside the host library, its cycles per
# stabiliser tick and its flash/RAM: reports/crazyflie_board.json.
CF_HIL_ARGS ?= --rows short --episodes 5
hil: $(STAMP) deps
	$(PY) -m firmware_bridge hil --emulator --checkpoint $(RUN) --artifacts $(OUT) $(HIL_ARGS)
	@if [ -d $(OUT)/crazyflie ]; then \
	  $(PY) -m firmware_bridge crazyflie --emulator --artifacts $(OUT) $(CF_HIL_ARGS); \
	else echo "hil: no $(OUT)/crazyflie, so no bench HIL of the Crazyflie app: run \`make crazyflie\` to add it"; fi

BOARD ?= stm32f405
MODEL ?= $(OUT)/policy.h
firmware:
	$(MAKE) -C firmware BOARD=$(BOARD) MODEL=$(abspath $(MODEL))

# A real board: the HSE/PLL clock set-up on; written with an ST-LINK (METHOD=stlink) or
# over USB through the ROM DFU bootloader (METHOD=dfu, or `make flash-dfu`), then verified.
METHOD ?= stlink
FLASH_IMAGE = firmware/build/stm32f405/$(basename $(notdir $(MODEL)))-realclock/quadpilot.bin
flash: $(STAMP) deps
	@test -f $(MODEL) || { echo "flash: $(MODEL) is missing: run \`make train export\` first (or MODEL=path/to/policy.h)" >&2; exit 1; }
	@$(MAKE) -s -C firmware BOARD=stm32f405 MODEL=$(abspath $(MODEL)) SCHEME=int REAL_CLOCK=1
	@$(PY) -m firmware_bridge flash $(FLASH_IMAGE) --method $(METHOD)

flash-dfu:
	@$(MAKE) --no-print-directory flash METHOD=dfu

clean:
	rm -rf firmware/build reports
