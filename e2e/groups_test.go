package e2e

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"chatserver/config"
)

// TestGroupChat: a member's group message reaches every other member (every
// connection of theirs) live, is stored with its group for offline members and
// delivered at their init with "group"; a non-member is refused.
func TestGroupChat(t *testing.T) {
	t.Parallel()
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			ts := startServer(t, backend, func(c *config.Config) { c.Limits.MaxGroupSize = 5 })
			ts.mustAddMembers("team", []string{"alice", "bob", "carol", "dave"})
			alice, _ := login(t, ts, "alice", "")
			bob1, _ := login(t, ts, "bob", "")
			bob2, _ := login(t, ts, "bob", "")
			mallory, _ := login(t, ts, "mallory", "")

			alice.send(`{"flag":"group","from":"alice","to":"team","content":"standup in 5"}`)
			for i, c := range []*client{bob1, bob2} {
				f := c.next(5 * time.Second)
				if f["from"] != "alice" || f["content"] != "standup in 5" || f["group"] != "team" {
					t.Fatalf("bob tab %d got %v", i+1, f)
				}
			}
			alice.sync()
			eventually(t, "rows for carol and dave", func() bool { return ts.unsent("carol", "alice") == 1 && ts.unsent("dave", "alice") == 1 })
			if ts.unsent("alice", "") != 0 {
				t.Fatal("the sender got a copy of her own group message")
			}
			mallory.send(`{"flag":"group","from":"mallory","to":"team","content":"spam"}`)
			if f := mallory.next(5 * time.Second); f["code"] != "forbidden" {
				t.Fatalf("non-member -> %v; want forbidden", f)
			}
			_, got := login(t, ts, "carol", "")
			if len(got) != 1 || got[0]["group"] != "team" || got[0]["from"] != "alice" {
				t.Fatalf("carol's drain = %v; want the group message with group team", got)
			}
			// Order per sender holds across many group messages.
			for i := 0; i < 50; i++ {
				alice.sendJSON(map[string]string{"flag": "group", "from": "alice", "to": "team", "content": fmt.Sprint(i)})
			}
			for i := 0; i < 50; i++ {
				if f := bob1.next(5 * time.Second); f["content"] != fmt.Sprint(i) {
					t.Fatalf("bob's group message %d = %v", i, f)
				}
			}
			// The size limit: a sixth member is refused and nothing changes.
			if code, out := ts.addMembers("team", []string{"erin", "frank"}); code == http.StatusOK {
				t.Fatalf("adding past limits.max_group_size succeeded: %v", out)
			}
			if got := ts.members("team"); len(got) != 4 {
				t.Fatalf("group has %v after a refused add; want 4 members", got)
			}
		})
	}
}

// TestGroupOfThousands: a message to a 3,000-member group costs one membership
// read (cached), reaches every online member and stores the rest.
func TestGroupOfThousands(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "redis+mariadb", nil)
	members := []string{"boss"}
	for i := 0; i < 3000; i++ {
		members = append(members, fmt.Sprint("m", i))
	}
	ts.mustAddMembers("big", members)
	boss, _ := login(t, ts, "boss", "")
	online := make([]*client, 20)
	for i := range online {
		online[i], _ = login(t, ts, fmt.Sprint("m", i), "")
	}
	boss.send(`{"flag":"group","from":"boss","to":"big","content":"all hands"}`)
	for i, c := range online {
		if f := c.next(5 * time.Second); f["content"] != "all hands" {
			t.Fatalf("member %d got %v", i, f)
		}
	}
	boss.sync()
	eventually(t, "2,980 offline rows", func() bool {
		var n int
		_ = ts.db().QueryRow("SELECT COUNT(*) FROM app_offline WHERE `group` = 'big' AND status = 0").Scan(&n)
		return n == 2980
	})
}
