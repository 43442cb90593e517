# Glimpse: build, test and benchmark. `make setup` installs the system libraries it needs.
SWIFT   ?= swift
PYTHON  ?= .venv/bin/python
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PKGS := pkg-config libjpeg-dev libpng-dev libopenblas-dev
GLIMPSE := .build/release/glimpse
IMAGE   ?= samples/two-shapes.png

.PHONY: setup build test test-asan caption bench fuzz train venv clean

## setup: install missing system packages (apt-get; sudo when not root)
setup:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

## build: release build of the library and the glimpse CLI
build: setup
	$(SWIFT) build -c release --product glimpse

## caption: caption a sample with the default model (IMAGE=... to choose)
caption: build
	$(GLIMPSE) caption $(IMAGE) --detect

## test: unit, parity and end-to-end tests (the end-to-end tests drive the release CLI)
test: build
	GLIMPSE_BIN=$(CURDIR)/$(GLIMPSE) $(SWIFT) test

## bench: kernel, image, model and batch benchmarks (not tests)
bench: build
	$(GLIMPSE) bench

## venv: Python tools for fixtures, training and reference benchmarks (not needed by the engine)
venv:
	python3 -m venv .venv && .venv/bin/pip install -q -r tools/requirements.txt

clean:
	rm -rf .build
