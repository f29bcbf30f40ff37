# SPDX-License-Identifier: GPL-3.0-or-later
# borescope-bridge: the Makefile is the interface (README, CI and packagers call it).
#
#   make demo        simulator + bridge on loopback, no hardware needed
#   make test        the whole suite: host tests as a fresh machine sees them (make unit-fresh),
#                    then the guest tests (make e2e)
#   make check       the fast lane: unit tests (tests/unit) plus lint, a few minutes
#   make unit        host tests (unit, integration, system), on this machine as it is
#   make unit-fresh  make unit in a private mount namespace: empty /run, /var/tmp, /tmp, a new venv
#   make lint        ruff, mypy, plus systemd-analyze verify of the unit
#   make bench       the benchmark (never part of make test)
#   make deb         the Debian package: dist/borescope-bridge_VERSION_all.deb
#   sudo make install / uninstall    [DESTDIR=... PREFIX=/usr/local]

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

# ---- system packages (Debian/Ubuntu names) that the venv and the tests need ----
# python3-venv: the venv; gcc python3-dev pkg-config libsystemd-dev: building systemd-python;
# libturbojpeg0: the fast decode path (bridge/pixels/decode.py; simplejpeg is the fallback);
# systemd (systemd-analyze), udev (udevadm), iproute2 (ip, for netns tests), kmod (modinfo);
# chromium + chromium-driver: the web page's browser test (tests/integration/test_web_browser.py).
APT_PACKAGES ?= python3-venv python3-dev gcc make pkg-config libsystemd-dev libturbojpeg0 systemd udev iproute2 kmod chromium chromium-driver
# gcc-multilib (amd64 only): tests/unit/camera/test_v4l2_layout.py compiles videodev2.h with gcc -m32 too,
# to check the i386 struct layout against the kernel's own header.
ifeq ($(origin APT_PACKAGES)-$(shell dpkg --print-architecture 2>/dev/null),file-amd64)
APT_PACKAGES += gcc-multilib
endif

# ---- install layout ----
# The installed venv uses the system interpreter: a pyenv or conda Python under /root or /home
# is out of the service's reach (ProtectHome=yes, and it runs as its own user).
INSTALL_PYTHON ?= $(firstword $(wildcard /usr/bin/python3) $(PYTHON))
PREFIX ?= /usr/local
SYSCONFDIR ?= /etc
BINDIR ?= $(PREFIX)/bin
# The package lives in its own virtual environment here.
LIBDIR ?= $(PREFIX)/lib/borescope-bridge
DATADIR ?= $(PREFIX)/share/borescope-bridge
CONFDIR ?= $(SYSCONFDIR)/borescope-bridge
# Extra pip arguments for the installed venv, e.g. an offline install:
#   make install PIP_INSTALL_ARGS="--no-index --find-links /path/to/wheels"
PIP_INSTALL_ARGS ?=
# A distribution package (PREFIX=/usr) puts system files under /usr/lib; a local install puts
# them under /etc, because udev and kmod never look in /usr/local.
ifeq ($(PREFIX),/usr)
SYSTEMFILESDIR ?= /usr/lib
UNITDIR ?= /usr/lib/systemd/system
else
SYSTEMFILESDIR ?= $(SYSCONFDIR)
UNITDIR ?= $(SYSCONFDIR)/systemd/system
endif
UDEVRULESDIR ?= $(SYSTEMFILESDIR)/udev/rules.d
# NetworkManager runs the scripts here on interface up/down (WiFi borescopes; nm/).
NMDISPATCHERDIR ?= /etc/NetworkManager/dispatcher.d
MODPROBEDIR ?= $(SYSTEMFILESDIR)/modprobe.d
MODULESLOADDIR ?= $(SYSTEMFILESDIR)/modules-load.d
SYSCTLDIR ?= $(SYSTEMFILESDIR)/sysctl.d
SYSUSERSDIR ?= $(SYSTEMFILESDIR)/sysusers.d

# The install table: "source:destination" pairs; uninstall removes exactly these destinations.
INSTALL_FILES := \
	udev/90-borescope-bridge.rules:$(UDEVRULESDIR)/90-borescope-bridge.rules \
	systemd/borescope-bridge.modprobe.conf:$(MODPROBEDIR)/borescope-bridge.conf \
	systemd/borescope-bridge.modules-load.conf:$(MODULESLOADDIR)/borescope-bridge.conf \
	systemd/borescope-bridge.sysctl.conf:$(SYSCTLDIR)/60-borescope-bridge.conf \
	systemd/borescope-bridge.sysusers.conf:$(SYSUSERSDIR)/borescope-bridge.conf \
	systemd/50-borescope-bridge.network:$(DATADIR)/50-borescope-bridge.network \
	config.example.toml:$(DATADIR)/config.example.toml
# Installed by their own recipes, removed with the table.
UNIT_DEST := $(UNITDIR)/borescope-bridge.service
TEMPLATE_DEST := $(UNITDIR)/borescope-bridge@.service
DISPATCHER_DEST := $(NMDISPATCHERDIR)/90-borescope-bridge
BIN_DEST := $(BINDIR)/borescope-bridge
CONFIG_DEST := $(CONFDIR)/config.toml

.PHONY: all deps deb-deps deb venv demo check test unit unit-fresh e2e lint bench install uninstall install-check-module clean
all: venv

# ---- development ----
# `make deps` installs APT_PACKAGES (as root, else names them); other targets reuse it with
# their own list: $(MAKE) deps APT_PACKAGES="...".
deps:
	@missing=""; \
	if command -v dpkg-query >/dev/null 2>&1; then \
	  for p in $(APT_PACKAGES); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	  done; \
	fi; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "Installing system packages:$$missing"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing \
	    || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; }; \
	else \
	  echo "NOTE: missing system packages:$$missing"; \
	  echo "      install them with: sudo apt-get install$$missing"; \
	  echo "      (Fedora: python3-devel gcc pkgconf systemd-devel; Arch: python gcc pkgconf systemd)"; \
	fi

venv: $(VENV)/.stamp
$(VENV)/.stamp: pyproject.toml | deps
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,bench]'
	touch $@

demo: venv
	$(VENV)/bin/borescope-bridge demo

test: unit-fresh e2e

# The fast lane while working: no processes, namespaces, packages or guests.
check: lint
	$(PY) -m pytest -q tests/unit

unit: venv
	@$(MAKE) --no-print-directory deps APT_PACKAGES="$(DEB_BUILD_DEPS) $(DEB_TEST_PACKAGES)"
	$(PY) -m pytest -q

# The host suite as a machine where nothing of this project has run sees it (tests/fresh-machine:
# empty /run, /var/tmp and /tmp, our installed files hidden), with a venv made from scratch in
# that empty /tmp. A used machine's leftovers (/run/udev, VM state, an old venv) cannot help a
# test pass there. Where the namespace cannot be made (not root), the plain suite runs, with a
# note; under CI that is a failure, since CI is what must catch this class of regression.
FRESH_VENV ?= /tmp/borescope-bridge-fresh-venv
unit-fresh:
	@rc=0; tests/fresh-machine $(MAKE) --no-print-directory unit VENV='$(FRESH_VENV)' || rc=$$?; \
	if [ $$rc = 77 ]; then \
	  if [ "$${CI:-}" = true ]; then echo "FAIL: CI must run the host suite as a fresh machine (see above)"; exit 1; fi; \
	  echo "NOTE: running the host suite on this machine as it is (make unit)"; \
	  $(MAKE) --no-print-directory unit; \
	else exit $$rc; fi

# The guest tests (issue 5) live in tests/vm/; they skip with a reason where QEMU cannot run.
# Exit 77 from the harness means "this machine cannot run the guest": reported, not failed.
E2E ?= tests/vm/e2e
e2e: venv
	@if [ ! -x '$(E2E)' ]; then echo "SKIP: e2e: $(E2E) is not available"; exit 0; fi; \
	rc=0; '$(E2E)' || rc=$$?; \
	if [ $$rc = 77 ]; then echo "SKIP: e2e could not run on this machine (see above)"; exit 0; fi; \
	exit $$rc

lint: venv
	$(PY) -m ruff check bridge tests $(wildcard bench)
	$(PY) -m ruff format --check bridge tests $(wildcard bench)
	$(PY) -m mypy bridge tests $(wildcard bench)
	@tmp=$$(mktemp -d); \
	sed 's|^ExecStart=[^ ]*|ExecStart=/bin/true|' systemd/borescope-bridge.service > $$tmp/borescope-bridge.service; \
	sed 's|^ExecStart=[^ ]*|ExecStart=/bin/true|' systemd/borescope-bridge@.service > $$tmp/borescope-bridge@.service; \
	out=$$(cd $$tmp && systemd-analyze verify borescope-bridge.service borescope-bridge@lo.service 2>&1); rc=$$?; rm -rf $$tmp; \
	if [ $$rc -ne 0 ] || [ -n "$$out" ]; then echo "$$out"; echo "systemd-analyze verify failed"; exit 1; fi; \
	echo "systemd-analyze verify: clean"

bench: venv
	$(PY) -m bench

clean:
	rm -rf build dist .pytest_cache .ruff_cache .mypy_cache

# ---- the Debian package ----
# Built by dpkg-buildpackage (debhelper + pybuild) in a copy of the tree under build/deb, so
# nothing lands beside the checkout; the .deb is copied to dist/. Debian's own /usr/bin/python3
# comes first on PATH: pybuild takes the first python3, and a pyenv/conda one lacks `build`
# and Debian's packages. Works as root or not (Rules-Requires-Root: no).
DEB_BUILD_DEPS ?= dpkg-dev debhelper dh-python pybuild-plugin-pyproject python3-all \
	python3-setuptools python3-wheel
DEB_VERSION = $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' bridge/__init__.py)
DEB_CHANGELOG_VERSION = $(shell awk -F'[()]' 'NR == 1 { print $$2 }' debian/changelog)
DEB_PATH := /usr/sbin:/usr/bin:/sbin:/bin
DEB_DIR ?= build/deb
DIST_DIR ?= dist
# What the package tests need besides the build (tests/system/test_deb.py skips without them).
DEB_TEST_PACKAGES ?= lintian python3-numpy python3-systemd python3-aiohttp python3-segno libturbojpeg0 util-linux
deb-deps:
	@$(MAKE) --no-print-directory deps APT_PACKAGES="$(DEB_BUILD_DEPS)"
	@for p in $(DEB_BUILD_DEPS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' \
	    || { echo "make deb needs $$p (see above)"; exit 1; }; \
	done

deb: deb-deps
	@test '$(DEB_VERSION)' = '$(DEB_CHANGELOG_VERSION)' || { \
	  echo "bridge.__version__ is $(DEB_VERSION) but debian/changelog says $(DEB_CHANGELOG_VERSION):"; \
	  echo "add a changelog entry (dch -v $(DEB_VERSION)) or fix the version"; exit 1; }
	rm -rf '$(DEB_DIR)'
	mkdir -p '$(DEB_DIR)/src' '$(DIST_DIR)'
	tar -cf - --exclude=./.git --exclude=./.venv --exclude='./.venv-*' --exclude=./build \
	  --exclude=./dist --exclude='*.egg-info' --exclude=__pycache__ --exclude=./.pytest_cache \
	  --exclude=./.mypy_cache --exclude=./.ruff_cache . | tar -xf - -C '$(DEB_DIR)/src'
	cd '$(DEB_DIR)/src' && env PATH='$(DEB_PATH)' dpkg-buildpackage -b -us -uc --no-sign
	cp '$(DEB_DIR)/borescope-bridge_$(DEB_VERSION)_all.deb' '$(DIST_DIR)/'
	@echo "Built $(DIST_DIR)/borescope-bridge_$(DEB_VERSION)_all.deb; install it with:"
	@echo "  sudo apt install ./$(DIST_DIR)/borescope-bridge_$(DEB_VERSION)_all.deb"

# ---- install ----
# The new venv is built beside the live one ($(LIBDIR).new) and swapped in only once pip and
# compileall have succeeded: an offline or failed install leaves the running service its code.
# Every path the venv recorded (script shebangs, activate scripts, pyvenv.cfg, byte-code file
# names) is rewritten from the build path to the final $(LIBDIR), without DESTDIR, so a staged
# tree is correct once copied to /.
NEWLIB = $(DESTDIR)$(LIBDIR).new
OLDLIB = $(DESTDIR)$(LIBDIR).old
install: install-check-module
	@test -f pyproject.toml || { echo "run make install from the source tree"; exit 1; }
	$(INSTALL_PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	  || { echo "$(INSTALL_PYTHON) is older than 3.11: set INSTALL_PYTHON=/path/to/python3.11"; exit 1; }
	rm -rf '$(NEWLIB)' '$(OLDLIB)'
	@set -e; keep() { rm -rf '$(NEWLIB)'; echo "make install failed: $$1; $(LIBDIR) was left as it was" >&2; exit 1; }; \
	$(INSTALL_PYTHON) -m venv --prompt borescope-bridge '$(NEWLIB)' || keep "cannot create a venv"; \
	'$(NEWLIB)/bin/python' -m pip install -q --no-compile --disable-pip-version-check \
	  $(PIP_INSTALL_ARGS) . || keep "pip could not install the package (offline? see PIP_INSTALL_ARGS)"; \
	grep -rlI --null -F '$(NEWLIB)' '$(NEWLIB)/bin' '$(NEWLIB)/pyvenv.cfg' \
	  | xargs -0 -r sed -i 's|$(NEWLIB)|$(LIBDIR)|g' || keep "cannot rewrite the venv's paths"; \
	'$(NEWLIB)/bin/python' -m compileall -q -f -s '$(NEWLIB)' -p '$(LIBDIR)' '$(NEWLIB)/lib' >/dev/null \
	  || keep "compileall failed"
	if [ -e '$(DESTDIR)$(LIBDIR)' ]; then mv '$(DESTDIR)$(LIBDIR)' '$(OLDLIB)'; fi
	mv '$(NEWLIB)' '$(DESTDIR)$(LIBDIR)'
	rm -rf '$(OLDLIB)'
	install -d '$(DESTDIR)$(BINDIR)'
	ln -sfn '$(LIBDIR)/bin/borescope-bridge' '$(DESTDIR)$(BIN_DEST)'
	@set -e; for pair in $(INSTALL_FILES); do \
	  src=$${pair%%:*}; dst=$${pair#*:}; \
	  install -D -m 0644 "$$src" '$(DESTDIR)'"$$dst"; \
	done
	install -d '$(DESTDIR)$(UNITDIR)'
	sed 's|^ExecStart=/usr/local/bin/borescope-bridge|ExecStart=$(BIN_DEST)|' systemd/borescope-bridge.service \
	  > '$(DESTDIR)$(UNIT_DEST)'
	sed 's|^ExecStart=/usr/local/bin/borescope-bridge|ExecStart=$(BIN_DEST)|' systemd/borescope-bridge@.service \
	  > '$(DESTDIR)$(TEMPLATE_DEST)'
	chmod 0644 '$(DESTDIR)$(UNIT_DEST)' '$(DESTDIR)$(TEMPLATE_DEST)'
	install -D -m 0755 nm/90-borescope-bridge '$(DESTDIR)$(DISPATCHER_DEST)'
	install -d -m 0755 '$(DESTDIR)$(CONFDIR)'
	@if [ -e '$(DESTDIR)$(CONFIG_DEST)' ]; then \
	  echo "Keeping your $(CONFIG_DEST) (the example is in $(DATADIR)/config.example.toml)"; \
	else \
	  install -m 0644 config.example.toml '$(DESTDIR)$(CONFIG_DEST)'; \
	fi
	@if [ -z '$(DESTDIR)' ]; then \
	  command -v systemd-sysusers >/dev/null && systemd-sysusers '$(SYSUSERSDIR)/borescope-bridge.conf' || true; \
	  command -v udevadm >/dev/null && udevadm control --reload || true; \
	  if [ -d /run/systemd/system ]; then \
	    systemctl daemon-reload || true; \
	    systemctl try-restart borescope-bridge.service 'borescope-bridge@*.service' || true; \
	  fi; \
	  command -v sysctl >/dev/null && sysctl -q -p '$(SYSCTLDIR)/60-borescope-bridge.conf' || true; \
	  echo "Installed. Plug the borescope in, or: sudo systemctl start borescope-bridge"; \
	  echo "Snapshots: /var/lib/borescope-bridge/snapshots (join the group: sudo usermod -aG borescope-bridge \$$USER)"; \
	fi

# Say how to get v4l2loopback instead of failing later with an obscure message.
install-check-module:
	@if [ -z '$(DESTDIR)' ] && ! modinfo v4l2loopback >/dev/null 2>&1; then \
	  echo "NOTE: the v4l2loopback kernel module is not installed; the virtual camera needs it:"; \
	  echo "      Debian/Ubuntu: sudo apt install v4l2loopback-dkms"; \
	  echo "      Fedora (RPM Fusion): sudo dnf install v4l2loopback"; \
	  echo "      Arch: sudo pacman -S v4l2loopback-dkms"; \
	  echo "      then: sudo modprobe v4l2loopback (borescope-bridge doctor checks it)"; \
	fi

# Keeps /var/lib/borescope-bridge (snapshots) and a config.toml that differs from the example.
uninstall:
	@if [ -z '$(DESTDIR)' ] && [ -d /run/systemd/system ]; then \
	  systemctl disable --now borescope-bridge.service 2>/dev/null || true; \
	  systemctl stop 'borescope-bridge@*.service' 2>/dev/null || true; \
	fi
	rm -f '$(DESTDIR)$(UNIT_DEST)' '$(DESTDIR)$(TEMPLATE_DEST)' '$(DESTDIR)$(DISPATCHER_DEST)' '$(DESTDIR)$(BIN_DEST)'
	@for pair in $(INSTALL_FILES); do rm -f '$(DESTDIR)'"$${pair#*:}"; done
	@if [ -f '$(DESTDIR)$(LIBDIR)/pyvenv.cfg' ]; then rm -rf '$(DESTDIR)$(LIBDIR)'; fi
	@if [ -f '$(DESTDIR)$(CONFIG_DEST)' ] && cmp -s config.example.toml '$(DESTDIR)$(CONFIG_DEST)'; then \
	  rm -f '$(DESTDIR)$(CONFIG_DEST)'; \
	elif [ -f '$(DESTDIR)$(CONFIG_DEST)' ]; then \
	  echo "Keeping your edited $(CONFIG_DEST)"; \
	fi
	-@rmdir '$(DESTDIR)$(CONFDIR)' '$(DESTDIR)$(DATADIR)' 2>/dev/null
	@if [ -z '$(DESTDIR)' ]; then \
	  command -v udevadm >/dev/null && udevadm control --reload || true; \
	  if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi; \
	  echo "Removed. Kept /var/lib/borescope-bridge (snapshots) and the borescope-bridge user."; \
	fi
