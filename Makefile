# Two commands a new user needs: `make demo` and `make test`. Both create .venv and install what they need.
.PHONY: demo test check lint format bench clean

PERSONS ?= 200
PORT ?= 8080

demo:
	@scripts/bootstrap
	.venv/bin/bcconnect demo --persons $(PERSONS) --port $(PORT)

test:
	@scripts/test

lint:
	@scripts/bootstrap dev
	.venv/bin/ruff format --check src sandbox tests bench
	.venv/bin/ruff check src sandbox tests bench
	.venv/bin/mypy

format:
	@scripts/bootstrap dev
	.venv/bin/ruff format src sandbox tests bench
	.venv/bin/ruff check --fix src sandbox tests bench

clean:
	scripts/test-postgres stop || true
	rm -rf .bcconnect-pg bcconnect-data .pytest_cache .mypy_cache .ruff_cache
