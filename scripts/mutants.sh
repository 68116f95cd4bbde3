#!/usr/bin/env bash
# Mutation tests of the deletion core: the cleanup policy, cleanup runs and the ledger.
# A surviving mutant is a missing test. Slow (each mutant rebuilds the crate and its tests;
# about an hour and a half on two cores), so not part of .ci/run.
#
#   cargo install cargo-mutants
#   scripts/mutants.sh            # results in target/mutants/*/mutants.out/
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p target/mutants

# The policy is pure: its unit tests must catch every mutant on their own.
cargo mutants --file src/policy.rs -o target/mutants/policy -- --lib

# Cleanup runs and the ledger, against the emulator: the unit tests and the integration
# tests of cleanup, the ledger, faults and edge data.
cargo mutants --file src/cleanup.rs --file src/ledger.rs -o target/mutants/cleanup \
  -- --lib --test it -- cleanup ledger faults edge
