package sqlin

import (
	"reflect"
	"testing"
)

func TestList(t *testing.T) {
	q, args := List("DELETE FROM t WHERE id IN (", []int64{7, 8, 9})
	if q != "DELETE FROM t WHERE id IN (?,?,?)" || !reflect.DeepEqual(args, []any{int64(7), int64(8), int64(9)}) {
		t.Fatalf("List = %q %v", q, args)
	}
	q, args = List("SELECT x FROM t WHERE a IN (", []string{"bob'; DROP TABLE t; --"})
	if q != "SELECT x FROM t WHERE a IN (?)" || args[0] != "bob'; DROP TABLE t; --" {
		t.Fatalf("List = %q %v: the value must be an argument, not SQL", q, args)
	}
}
