package hub

import (
	"crypto/rand"
	"encoding/base32"
	"strconv"
	"strings"
)

// NewConn wraps a transport as this table's next connection.
func (t *Table) NewConn(tr Transport) *Conn {
	return &Conn{seq: t.nextSeq.Add(1), t: tr}
}

// Seq is the connection's number, unique in this table (a key for maps).
func (c *Conn) Seq() uint64 { return c.seq }

// ConnID is c's id: unique for the life of the deployment and never reused
// (a random run id, then c's number in base 36). It is made when asked for (at
// init, at close, in logs) rather than kept as a string in every connection.
func (t *Table) ConnID(c *Conn) string {
	return t.run + "-" + strconv.FormatUint(c.seq, 36)
}

// RunID is a random 8-character id for one life of the process: the prefix of
// connection ids here and of generated message ids in handlers.
func RunID() string {
	var b [5]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}
