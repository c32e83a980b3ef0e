package config

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// TestNetworkListsParsed: the network list settings take CIDRs and single
// addresses from the environment (comma-separated), and a bad entry stops the
// start with an error naming the setting and the entry.
func TestNetworkListsParsed(t *testing.T) {
	for _, setting := range []string{"api.metrics_allow", "server.trusted_proxies"} {
		env := EnvPrefix + strings.ToUpper(strings.ReplaceAll(setting, ".", "_"))
		if _, err := Load("../config.yaml", false, envOf(map[string]string{env: "10.0.0.0/8, 192.168.1.7,fd00::/8"})); err != nil {
			t.Fatalf("%s: valid networks refused: %v", env, err)
		}
		for _, bad := range []string{"10.0.0.0/33", "10.0.0", "example.com", "10.0.0.0/8,300.1.1.1"} {
			_, err := Load("../config.yaml", false, envOf(map[string]string{env: bad}))
			if err == nil || !strings.Contains(err.Error(), setting) || !strings.Contains(err.Error(), "CIDR") {
				t.Errorf("%s=%s: %v; want an error naming %s and what it wants", env, bad, err, setting)
			}
		}
	}
	got, err := Networks("x", []string{"10.1.2.3/8", "192.168.1.7", "::ffff:10.0.0.0/104", "2001:db8::1"})
	want := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.7/32"),
		netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::1/128"),
	}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Networks = %v, %v; want %v", got, err, want)
	}
}

// TestProxyProtocolNeedsTrustedProxies: PROXY headers are taken only from
// listed balancers, so the setting alone is refused, naming both keys.
func TestProxyProtocolNeedsTrustedProxies(t *testing.T) {
	_, err := Load("../config.yaml", false, envOf(map[string]string{"CHAT_SERVER_PROXY_PROTOCOL": "true"}))
	if err == nil || !strings.Contains(err.Error(), "server.proxy_protocol") || !strings.Contains(err.Error(), "server.trusted_proxies") {
		t.Fatalf("proxy_protocol without trusted_proxies: %v; want an error naming both", err)
	}
	cfg, err := Load("../config.yaml", false, envOf(map[string]string{
		"CHAT_SERVER_PROXY_PROTOCOL": "true", "CHAT_SERVER_TRUSTED_PROXIES": "10.0.0.0/8,192.168.0.10",
	}))
	if err != nil || !cfg.Server.ProxyProtocol || !reflect.DeepEqual(cfg.Server.TrustedProxies, []string{"10.0.0.0/8", "192.168.0.10"}) {
		t.Fatalf("from the environment: %+v, %v", cfg.Server, err)
	}
}
