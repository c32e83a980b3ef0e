// Package deploy holds what runs the server in production: the systemd unit
// (chatserver.service), the kernel settings for a million connections
// (99-chatserver.conf), the release build (build-release.sh) and the Grafana
// dashboard (grafana-dashboard.json). It has no code; its tests check those
// files against the server they are for.
package deploy
