"""What the tests, `make demo`, `make demo-cluster` and `make bench` run against on 127.0.0.1, in one
place (scripts/ holds only their entry points).

The test control plane (`make cluster-up`): cluster.sh builds it from the Go modules under tools/ and runs
it; localcluster drives it; fluxchart reads production's Flux flags and RBAC from the Flux Operator's
source. The stand-ins: fakegithub plays GitHub's commit-status API for Flux's `github` Provider,
fakegithubapi the REST API preflight and the release read, fakeaws the AWS calls moto lacks; localservices
runs a real registry and the app's wheelhouse; sandbox is a release checkout with its remote; preflightworld
is the world `make preflight` is shown in.
"""
