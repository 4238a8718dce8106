//go:build tools

// Package tools pins the API module whose Go types the Receiver CRD is generated from
// (notification-controller itself is not served by the module proxy; see docs/cluster.md).
package tools

import _ "github.com/fluxcd/notification-controller/api/v1"
