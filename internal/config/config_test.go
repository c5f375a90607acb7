package config

import (
	"strings"
	"testing"
	"time"
)

func TestDefaultIsValid(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
}

func TestFromEnv(t *testing.T) {
	env := map[string]string{
		"OWL_ADDR": "0.0.0.0:9999", "OWL_DATA": "/srv/owl", "OWL_CODE_STORAGE_LIMIT": "1024",
		"OWL_SHUTDOWN_TIMEOUT": "5s", "OWL_TOKEN": "tok", "OWL_ACCESS_KEY_ID": "AK", "OWL_SECRET_ACCESS_KEY": "SK",
	}
	c := Default()
	if err := c.FromEnv(func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if c.Addr != "0.0.0.0:9999" || c.DataDir != "/srv/owl" || c.CodeStorageLimit != 1024 ||
		c.ShutdownTimeout != 5*time.Second || c.Token != "tok" || c.AccessKeyID != "AK" || c.SecretAccessKey != "SK" {
		t.Errorf("FromEnv gave %+v", c)
	}
	bad := map[string]string{"OWL_CODE_STORAGE_LIMIT": "lots", "OWL_IDLE_TIMEOUT": "soon"}
	c = Default()
	err := c.FromEnv(func(k string) string { return bad[k] })
	if err == nil || !strings.Contains(err.Error(), "OWL_CODE_STORAGE_LIMIT") || !strings.Contains(err.Error(), "OWL_IDLE_TIMEOUT") {
		t.Errorf("bad env: err = %v, want both settings named", err)
	}
}

func TestValidateNamesTheSetting(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"addr", func(c *Config) { c.Addr = "nope" }, "addr"},
		{"node name", func(c *Config) { c.NodeName = "a b" }, "node name"},
		{"cluster half set", func(c *Config) { c.ClusterName = "owl" }, "--cluster-name, --cluster-addr and --routes go together"},
		{"cluster addr", func(c *Config) {
			c.ClusterName, c.ClusterAddr, c.Routes = "owl", "nope", []string{"nats-route://h:6222"}
		}, "cluster addr"},
		{"route", func(c *Config) { c.ClusterName, c.ClusterAddr, c.Routes = "owl", ":6222", []string{"http://h"} }, "want nats-route://HOST:PORT"},
		{"route password alone", func(c *Config) {
			c.ClusterName, c.ClusterAddr, c.Routes, c.ClusterPassword = "owl", ":6222", []string{"nats-route://h:6222"}, "pw"
		}, "--cluster-user and OWL_CLUSTER_PASSWORD"},
		{"route TLS half", func(c *Config) {
			c.ClusterName, c.ClusterAddr, c.Routes, c.ClusterTLSCert = "owl", ":6222", []string{"nats-route://h:6222"}, "/c.pem"
		}, "--cluster-tls-ca"},
		{"route credentials alone", func(c *Config) { c.ClusterUser = "u" }, "without --cluster-name"},
		{"data", func(c *Config) { c.DataDir = "" }, "data"},
		{"region", func(c *Config) { c.Region = "Mars" }, "region"},
		{"account", func(c *Config) { c.AccountID = "12" }, "account id"},
		{"quota", func(c *Config) { c.CodeStorageLimit = 0 }, "code storage limit"},
		{"root", func(c *Config) { c.SandboxUID = 0 }, "must not run as root"},
		{"half a key pair", func(c *Config) { c.AccessKeyID = "AK" }, "OWL_SECRET_ACCESS_KEY"},
		{"log level", func(c *Config) { c.LogLevel = "loud" }, "log level"},
		{"log format", func(c *Config) { c.LogFormat = "yaml" }, "log format \"yaml\": want text or json"},
		{"function log age", func(c *Config) { c.LogRetention = time.Second }, "function log age"},
		{"function log bytes", func(c *Config) { c.FunctionLogBytes = 1000 }, "function log bytes"},
		{"function log bytes each", func(c *Config) { c.FunctionLogBytesEach = 1000 }, "function log bytes each"},
		{"network cidr", func(c *Config) { c.NetworkCIDR = "10.213.0.0" }, "network cidr"},
		{"network cidr v6", func(c *Config) { c.NetworkCIDR = "fd00::/64" }, "network cidr"},
		{"network cidr host bits", func(c *Config) { c.NetworkCIDR = "10.213.1.1/16" }, "did you mean 10.213.0.0/16"},
		{"network cidr too small", func(c *Config) { c.NetworkCIDR = "10.213.0.0/31" }, "/30 or larger"},
		{"prewarm negative", func(c *Config) { c.Prewarm = -1 }, "prewarm"},
		{"prewarm too many", func(c *Config) { c.Prewarm = MaxPrewarm + 1 }, "prewarm"},
		{"spare inits negative", func(c *Config) { c.SpareInits = -1 }, "spare inits"},
		{"spare inits too many", func(c *Config) { c.SpareInits = MaxSpareInits + 1 }, "spare inits"},
		{"console session ttl", func(c *Config) { c.ConsoleSessionTTL = time.Second }, "console session TTL 1s: must be at least a minute"},
		{"console sign-in failures", func(c *Config) { c.ConsoleSignInFailures = 0 }, "console sign-in failures 0: must be at least 1"},
		{"console sign-in window", func(c *Config) { c.ConsoleSignInWindow = 0 }, "console sign-in window 0s: must be between 1s and 24h"},
		{"metric history interval", func(c *Config) { c.MetricHistoryInterval = 100 * time.Millisecond }, "metric history interval 100ms: must be between 1s and 1h"},
		{"metric history age", func(c *Config) { c.MetricHistoryAge = time.Minute }, "metric history age 1m0s: must be at least 1h"},
		{"metric history bytes", func(c *Config) { c.MetricHistoryBytes = 1000 }, "metric history bytes 1000: must be 0 (sized from the disk) or at least 1 MiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.mutate(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() = %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}

func TestNetworkSettings(t *testing.T) {
	c := Default()
	if !c.NetworkEgress || c.NetworkCIDR != DefaultNetworkCIDR {
		t.Errorf("default network: egress %v cidr %q, want true %q", c.NetworkEgress, c.NetworkCIDR, DefaultNetworkCIDR)
	}
	env := map[string]string{"OWL_NETWORK_EGRESS": "false", "OWL_NETWORK_CIDR": "100.64.0.0/16"}
	if err := c.FromEnv(func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if p, err := c.NetworkPool(); c.NetworkEgress || err != nil || p.String() != "100.64.0.0/16" {
		t.Errorf("from env: egress %v pool %v %v", c.NetworkEgress, p, err)
	}
	env = map[string]string{"OWL_NETWORK_EGRESS": "0"}
	c = Default()
	if err := c.FromEnv(func(k string) string { return env[k] }); err != nil || c.NetworkEgress {
		t.Errorf("OWL_NETWORK_EGRESS=0: egress %v, err %v", c.NetworkEgress, err)
	}
	env = map[string]string{"OWL_NETWORK_EGRESS": "maybe"}
	if err := c.FromEnv(func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), "OWL_NETWORK_EGRESS") {
		t.Errorf("OWL_NETWORK_EGRESS=maybe: err %v, want the setting named", err)
	}
}

func TestPrewarmSetting(t *testing.T) {
	c := Default()
	if c.Prewarm != 1 {
		t.Errorf("default Prewarm = %d, want 1", c.Prewarm)
	}
	env := map[string]string{"OWL_PREWARM": "0"}
	if err := c.FromEnv(func(k string) string { return env[k] }); err != nil || c.Prewarm != 0 {
		t.Errorf("OWL_PREWARM=0: Prewarm %d, err %v", c.Prewarm, err)
	}
	env = map[string]string{"OWL_PREWARM": "some"}
	if err := c.FromEnv(func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), "OWL_PREWARM") {
		t.Errorf("OWL_PREWARM=some: err %v, want the setting named", err)
	}
}
