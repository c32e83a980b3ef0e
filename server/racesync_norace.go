//go:build !race

package server

import (
	"net"

	"github.com/lesismal/nbio/nbhttp"
)

// raceSync is a no-op outside race-detector builds (see racesync_race.go).
func raceSync(*nbhttp.Engine) func(net.Conn) { return nil }
