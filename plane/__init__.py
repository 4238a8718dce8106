"""The test control plane (`make cluster-up`): cluster.sh builds it from the Go modules under tools/ and
runs it on 127.0.0.1; localcluster drives it for the tests, `make demo-cluster` and `make bench`;
fluxchart reads production's Flux flags and RBAC from the Flux Operator's source; fakegithub plays
GitHub's commit-status API for Flux's `github` Provider."""
