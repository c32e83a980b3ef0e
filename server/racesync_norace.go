//go:build !race

package server

import "github.com/lesismal/nbio/nbhttp"

// raceSync is a no-op outside race-detector builds (see racesync_race.go).
func raceSync(*nbhttp.Engine) {}
