// Package presence is the account map shared with other nodes and with the PHP
// side: account -> {node id, connection id} for every connection, written at init
// and removed at close. Two implementations: Local (the embedded default, in
// process) and Redis. Connection ids are never reused, so an entry that outlived
// its connection can never be mistaken for a newer one.
package presence

import "strings"

// Entry is one connection of an account.
type Entry struct {
	Node string // node id
	Conn string // connection id, unique and never reused
}

const fieldSep = "|"

func (e Entry) field() string { return e.Node + fieldSep + e.Conn }

func parseField(f string) Entry {
	node, conn, _ := strings.Cut(f, fieldSep)
	return Entry{Node: node, Conn: conn}
}
