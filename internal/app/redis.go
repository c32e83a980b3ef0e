package app

import (
	"strings"

	"github.com/redis/go-redis/v9"

	"chatserver/config"
)

// newRedisClient connects to the Redis that cfg names (cfg.Addr is not empty):
//   - sentinel_master set: a client that asks the Sentinels listed in addr where
//     the master is, and moves to the new master when they fail over;
//   - several addresses: a Redis Cluster (every key we use is one key per
//     command, and pub/sub is cluster-wide PUBLISH);
//   - one address: that Redis.
//
// Connections are made when first used, so an unreachable Redis is not an
// error here.
func newRedisClient(cfg config.Redis) redis.UniversalClient {
	var addrs []string
	for _, a := range strings.Split(cfg.Addr, ",") {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	switch {
	case cfg.SentinelMaster != "":
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: cfg.SentinelMaster, SentinelAddrs: addrs, SentinelPassword: cfg.SentinelPassword,
			Username: cfg.Username, Password: cfg.Password, DB: cfg.DB,
		})
	case len(addrs) > 1:
		return redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: addrs, Username: cfg.Username, Password: cfg.Password,
		})
	default:
		addr := cfg.Addr
		if len(addrs) == 1 {
			addr = addrs[0]
		}
		return redis.NewClient(&redis.Options{
			Addr: addr, Username: cfg.Username, Password: cfg.Password, DB: cfg.DB,
		})
	}
}
