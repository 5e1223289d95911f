# pg_vigil — the two commands are `make demo` and `make test`.
# Every target installs what it needs first (scripts/setup.sh, idempotent).

PG_CONFIG ?= /usr/lib/postgresql/15/bin/pg_config
export PG_CONFIG
CARGO_FEATURES := --no-default-features --features pg15
PGRX_TEST_PGDATA ?= /tmp/pg_vigil_pgrx_test

.PHONY: setup install install-debug test fmt-check clippy unit pgtest e2e \
        demo demo-stop bench package clean

setup:
	@scripts/setup.sh

install: setup
	PROFILE=release scripts/install.sh

install-debug: setup
	PROFILE=debug scripts/install.sh

test: setup fmt-check clippy unit pgtest install-debug e2e
	@echo "make test: all checks passed"

fmt-check:
	cargo fmt --all -- --check

clippy:
	cargo clippy --workspace --all-targets $(CARGO_FEATURES) -- -D warnings
	cargo clippy --lib $(CARGO_FEATURES),pg_test -- -D warnings

# Pure-logic unit tests (no database).
unit:
	cargo test --lib $(CARGO_FEATURES) -- --skip sql_tests --skip security_tests --skip ops_tests --skip alerting_tests

# #[pg_test]s inside a cluster that cargo-pgrx starts and stops.
pgtest:
	rm -rf $(PGRX_TEST_PGDATA)
	cargo pgrx test pg15 --runas postgres --pgdata $(PGRX_TEST_PGDATA)

# End-to-end: our own preloaded cluster (pg_cron + pg_vigil), always stopped.
e2e:
	scripts/old-version.sh 0.1.0 >/dev/null
	scripts/citus.sh
	PROFILE=debug scripts/package.sh >/dev/null
	cargo test -p pg_vigil_e2e --test e2e

demo: install
	@scripts/demo.sh start

demo-stop:
	@scripts/demo.sh stop

# A Debian package (target/package/*.deb) that installs without Rust.
package: setup
	scripts/package.sh

bench: install
	scripts/citus.sh
	@scripts/bench.sh

clean:
	cargo clean
