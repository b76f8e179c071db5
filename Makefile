# The two commands a newcomer needs: `make run` and `make test`. Both install
# the Debian packages that are missing, configure and build first.

PRESET ?= dev
BUILD_DIR := build/$(PRESET)
RUN_DIR := $(CURDIR)/run
CANOPYD := $(BUILD_DIR)/bin/canopyd

.PHONY: all deps configure build run test clean format

all: build

deps:
	@scripts/install-deps.sh

configure: deps
	@cmake --preset $(PRESET) >/dev/null

build: configure
	@cmake --build --preset $(PRESET)

run: build
	@mkdir -p $(RUN_DIR)/state $(RUN_DIR)/tmp
	@chmod 755 $(RUN_DIR)
	@echo "canopyd: HTTP on 127.0.0.1:8080, control API on unix:$(RUN_DIR)/control.sock"
	@echo "         try: curl -i http://127.0.0.1:8080/hello"
	@echo "              curl --unix-socket $(RUN_DIR)/control.sock http://localhost/config"
	@echo "         log below; Ctrl-C stops"
	$(CANOPYD) --no-daemon \
		--control unix:$(RUN_DIR)/control.sock \
		--pid $(RUN_DIR)/canopy.pid \
		--log /dev/stderr \
		--statedir $(RUN_DIR)/state \
		--tmpdir $(RUN_DIR)/tmp \
		--modulesdir $(CURDIR)/$(BUILD_DIR)/modules \
		--config $(CURDIR)/examples/config.json

test: build
	@ctest --preset $(PRESET)

format:
	@git ls-files '*.cpp' '*.h' '*.c' | xargs clang-format -i

clean:
	rm -rf build run
